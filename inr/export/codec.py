"""Model <-> `.inr` bytes.

Encoding quantizes every stored tensor per row (`quant.py`), codes pruning masks and
integer symbols with `entropy.py`, and writes the container with `bitstream.py`. Decoding
needs only the bytes: it validates the header against its schema (`schema.py`: types, ranges,
limits on size, work and memory, consistency with the model, all checked on the meta device
before allocating), decodes the sections, then builds the model and loads the dequantized
tensors. The same `dequantize` runs in QAT, so decoding reproduces the
encoder's quantized model exactly.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from inr import bitstream
from inr.bitstream import BitstreamError
from inr.export import entropy, netcode, schema
from inr.export.entropy import Reader
from inr.export.quant import dequantize, quantize, row_count
from inr.models.registry import ModelSpec, config_to_dict


def encode_model(
    spec: ModelSpec,
    cfg,
    tensors: dict[str, torch.Tensor],
    signal_meta: dict,
    bits: int | dict[str, int],
    masks: dict[str, torch.Tensor] | None = None,
    extra_header: dict | None = None,
    extra_sections: dict[str, bytes] | None = None,
    steps: dict[str, int] | None = None,
) -> bytes:
    """`tensors`: the model's stored tensors (`model.stored_tensors()`, float, unquantized) by
    name; they are quantized here at `bits` (one depth, or one per name), so the caller passes
    the values QAT saw, not fake-quantized ones. Their order is the file's order.

    With `steps` (a step index per name, `netcode.py`) the tensors are step-quantized into
    section NETW instead, and the header lists none of them (`"weights": "steps"`): the
    scheme of small networks, where the per-row one's ranges and per-tensor blocks cost more
    than the weights (unpruned tensors only; `bits` is not read then)."""
    header = {
        "model": spec.name,
        "config": config_to_dict(cfg),
        "signal": signal_meta,
        "colour": "RGB, 8 bits per channel after decoding; model output clamped to [0, 1]",
    }
    if steps is not None:
        if masks:
            raise ValueError("step-quantized weights cannot be pruned")
        header.update(tensors=[], weights="steps", **(extra_header or {}))
        return bitstream.write(header, {"NETW": netcode.encode_network(tensors, steps), **(extra_sections or {})})
    masks = masks or {}
    depth = bits if isinstance(bits, dict) else dict.fromkeys(tensors, bits)
    qprm, mask_sec, wgts = bytearray(), bytearray(), bytearray()
    records = []
    for name, w in tensors.items():
        mask = masks.get(name)
        src = w * mask if mask is not None else w
        qt = quantize(src.cpu(), depth[name])
        qprm += qt.offset.numpy().astype("<f2").tobytes() + qt.scale.numpy().astype("<f2").tobytes()
        symbols = qt.q.numpy().ravel()
        if mask is not None:
            m = mask.cpu().numpy().ravel().astype(np.int32)
            block = entropy.encode_mask(m)
            mask_sec += block
            symbols = symbols[m.astype(bool)]
        before = len(wgts)
        block, model_name = entropy.encode_symbols(symbols, 2 ** depth[name], tuple(w.shape) if mask is None else None)
        wgts += block
        records.append(
            {"name": name, "shape": list(w.shape), "bits": depth[name], "pruned": mask is not None, "coder": model_name, "bytes": len(wgts) - before}
        )
    sections = {"QPRM": bytes(qprm)}
    if mask_sec:
        sections["MASK"] = bytes(mask_sec)
    sections["WGTS"] = bytes(wgts)
    header["tensors"] = records
    header.update(extra_header or {})
    sections.update(extra_sections or {})
    return bitstream.write(header, sections)


# ------------------------------------------------------------------ decoding
def _read_qparams(reader: Reader, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    raw = reader.take(4 * rows)
    arr = np.frombuffer(raw, dtype="<f2").astype(np.float16)
    offset, scale = torch.from_numpy(arr[:rows].copy()), torch.from_numpy(arr[rows:].copy())
    if not (torch.isfinite(offset).all() and torch.isfinite(scale).all() and (scale > 0).all()):
        raise BitstreamError("invalid quantization parameters", part="payload")
    return offset, scale


def decode_model(data: bytes) -> tuple[ModelSpec, object, nn.Module, dict]:
    """bytes -> (spec, config, model on CPU in eval mode, header). Raises BitstreamError.

    The header is validated whole (`schema.check_header`: types, ranges, limits, consistency
    with the model) before anything is built, and the sections are entropy-decoded before the
    model is allocated, so a hostile file fails fast and small."""
    box = bitstream.read(data)
    header = box.header
    plan = schema.check_header(header)
    try:
        if schema.weight_scheme(header) == "steps":
            if "NETW" not in box.sections:
                raise BitstreamError("missing section NETW", part="payload")
            tensors = netcode.decode_network(box.sections["NETW"], plan.tensors)
        else:
            tensors = _decode_tensors(box, header)
    except entropy.EntropyError as exc:
        raise BitstreamError(str(exc), part="payload") from None
    model = _build(plan)
    model.load_stored_tensors(tensors)
    side = model.side_codec()
    if side is not None:  # e.g. latent grids: decoded with the loaded network
        side.decode(model, header.get(side.header_key), box.sections)
    model.eval()
    return plan.spec, plan.config, model, header


def _build(plan: schema.Plan) -> nn.Module:
    """The decoder's model (`for_decoding`: no fit-time-only parts), init values seeded (they
    are overwritten)."""
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is not ours to reseed
        torch.manual_seed(0)
        return plan.spec.model_cls.for_decoding(plan.config)


def _decode_tensors(box: bitstream.Container, header: dict) -> dict[str, torch.Tensor]:
    """Every stored tensor, dequantized, in the header's order (the order of the sections)."""
    for tag in ("QPRM", "WGTS"):
        if tag not in box.sections:
            raise BitstreamError(f"missing section {tag}", part="payload")
    records = header["tensors"]
    rows = sum(row_count(tuple(rec["shape"])) for rec in records)
    if len(box.sections["QPRM"]) != 4 * rows:
        raise BitstreamError(f"section QPRM has {len(box.sections['QPRM'])} bytes, the tensor list needs {4 * rows}", part="payload")
    qprm, wgts = Reader(box.sections["QPRM"]), Reader(box.sections["WGTS"])
    masks = Reader(box.sections.get("MASK", b""))
    out = {}
    for rec in records:
        bits, shape = rec["bits"], tuple(rec["shape"])
        n = math.prod(shape)
        offset, scale = _read_qparams(qprm, row_count(shape))
        if rec["pruned"]:
            m = entropy.decode_mask(masks, n)
            kept = entropy.decode_symbols(wgts, int(m.sum()), 2**bits)
            symbols = np.zeros(n, dtype=np.int32)
            symbols[m.astype(bool)] = kept
            mask = torch.from_numpy(m.astype(np.float32)).reshape(shape)
        else:
            symbols, mask = entropy.decode_symbols(wgts, n, 2**bits, shape), None
        w = dequantize(torch.from_numpy(symbols).reshape(shape), offset, scale)
        out[rec["name"]] = w * mask if mask is not None else w
    for r, name in ((qprm, "QPRM"), (wgts, "WGTS"), (masks, "MASK")):
        if r.remaining:
            raise BitstreamError(f"section {name} has {r.remaining} unused bytes", part="payload")
    return out


def info(data: bytes) -> dict:
    """Header plus a byte breakdown that sums to the file size. The header's structure is
    checked (what `inr info` prints has the right types); its limits are the decoder's business."""
    box = bitstream.read(data)
    schema.check_structure(box.header)
    breakdown = dict(box.sizes)
    total = sum(breakdown.values())
    out = {"bytes": len(data), "accounted": total, "breakdown": breakdown, "header": box.header}
    if schema.weight_scheme(box.header) == "steps" and "NETW" in box.sections:
        out["network"] = _network_table(box)
    return out


def _network_table(box: bitstream.Container) -> list[dict]:
    """Per tensor of a NETW section: name, shape, step, the bound of its integers and its
    Laplace scale (the tensor list is the model's: the header is checked to build it)."""
    shapes = schema.check_header(box.header).tensors
    table = netcode.network_table(box.sections["NETW"], list(shapes))
    return [
        {"name": name, "shape": shape, "step": netcode.step_of(e), "max_abs": 2**m - 1, "scale": netcode.scale_of(j)}
        for (name, shape), (e, m, j) in zip(shapes.items(), table)
    ]
