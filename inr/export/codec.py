"""Model <-> `.inr` bytes.

Encoding quantizes every stored tensor per row (`quant.py`), codes pruning masks and
integer symbols with `entropy.py`, and writes the container with `bitstream.py`. Decoding
needs only the bytes: it validates the header against hard limits, rebuilds the model from
its config (on the meta device first, to check sizes before allocating), and loads the
dequantized tensors. The same `dequantize` runs in QAT, so decoding reproduces the
encoder's quantized model exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from inr import bitstream
from inr.bitstream import BitstreamError
from inr.errors import InrError
from inr.export import entropy
from inr.export.entropy import Reader
from inr.export.quant import Quantized, dequantize, quantize, row_count
from inr.models.registry import ModelSpec, config_from_dict, config_to_dict, get_spec

LIMITS = {
    "params": 64_000_000,  # stored parameters
    "pixels": 1 << 31,  # frames x height x width
    "side": 16384,
    "frames": 100_000,
}
EMBEDDINGS = "embeddings"


@dataclass
class TensorRecord:
    name: str
    shape: list[int]
    bits: int
    pruned: bool


def stored_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a file carries: parameters outside the model's fit-time-only parts."""
    skip = tuple(getattr(model, "export_excludes", ()))
    return {n: p.detach() for n, p in model.named_parameters() if not n.startswith(skip)}


def encode_model(
    spec: ModelSpec,
    cfg,
    tensors: dict[str, torch.Tensor],
    signal_meta: dict,
    bits: int,
    masks: dict[str, torch.Tensor] | None = None,
    embeddings: Quantized | None = None,
    extra_header: dict | None = None,
    extra_sections: dict[str, bytes] | None = None,
) -> bytes:
    """`tensors`: the model's stored tensors (`stored_tensors(model)`, float, unquantized) by
    name; they are quantized here, so the caller passes the weights QAT saw, not fake-quantized
    ones. Their order is the file's order."""
    masks = masks or {}
    qprm, mask_sec, wgts = bytearray(), bytearray(), bytearray()
    records = []
    for name, w in tensors.items():
        mask = masks.get(name)
        src = w * mask if mask is not None else w
        qt = quantize(src.cpu(), bits)
        qprm += qt.offset.numpy().astype("<f2").tobytes() + qt.scale.numpy().astype("<f2").tobytes()
        symbols = qt.q.numpy().ravel()
        if mask is not None:
            m = mask.cpu().numpy().ravel().astype(np.int32)
            block = entropy.encode_mask(m)
            mask_sec += block
            symbols = symbols[m.astype(bool)]
        before = len(wgts)
        block, model_name = entropy.encode_symbols(symbols, 2**bits)
        wgts += block
        records.append(
            {"name": name, "shape": list(w.shape), "bits": bits, "pruned": mask is not None, "coder": model_name, "bytes": len(wgts) - before}
        )
    sections = {"QPRM": bytes(qprm)}
    if mask_sec:
        sections["MASK"] = bytes(mask_sec)
    sections["WGTS"] = bytes(wgts)
    header = {
        "model": spec.name,
        "config": config_to_dict(cfg),
        "signal": signal_meta,
        "tensors": records,
        "colour": "RGB, 8 bits per channel after decoding; model output clamped to [0, 1]",
    }
    if embeddings is not None:
        emb = bytearray(embeddings.offset.numpy().astype("<f2").tobytes() + embeddings.scale.numpy().astype("<f2").tobytes())
        block, model_name = entropy.encode_symbols(embeddings.q.numpy().ravel(), 2**embeddings.bits)
        emb += block
        sections["EMBD"] = bytes(emb)
        header["embeddings"] = {"shape": list(embeddings.q.shape), "bits": embeddings.bits, "coder": model_name}
    header.update(extra_header or {})
    sections.update(extra_sections or {})
    return bitstream.write(header, sections)


# ------------------------------------------------------------------ decoding
def _check_signal(meta) -> None:
    if not isinstance(meta, dict) or meta.get("kind") not in ("image", "video", "audio"):
        raise BitstreamError("header has no valid signal description")
    shape = meta.get("shape")
    if not isinstance(shape, list) or not 2 <= len(shape) <= 4 or not all(isinstance(s, int) and 0 < s for s in shape):
        raise BitstreamError("header signal shape is invalid")
    if any(s > LIMITS["side"] for s in shape[-3:-1]) or math.prod(shape[:-1]) > LIMITS["pixels"]:
        raise BitstreamError(f"signal {shape} exceeds this decoder's limits")
    if meta["kind"] == "video" and shape[0] > LIMITS["frames"]:
        raise BitstreamError("too many frames")


def _build(header: dict) -> tuple[ModelSpec, object, nn.Module]:
    try:
        spec = get_spec(str(header["model"]))
        cfg = config_from_dict(spec, dict(header["config"]))
    except (KeyError, TypeError, ValueError, InrError) as exc:
        raise BitstreamError(f"header model/config invalid ({exc})") from None
    try:
        with torch.device("meta"):
            probe = spec.model_cls(cfg)
        n = sum(p.numel() for p in stored_tensors(probe).values())
    except Exception as exc:
        raise BitstreamError(f"header config cannot build a model ({type(exc).__name__})") from None
    if n > LIMITS["params"]:
        raise BitstreamError(f"model would have {n} parameters (limit {LIMITS['params']})")
    expect = {k: list(v.shape) for k, v in stored_tensors(probe).items()}
    got = {t.get("name"): t.get("shape") for t in header.get("tensors", []) if isinstance(t, dict)}
    if expect != got:
        raise BitstreamError("tensor list does not match the model config")
    torch.manual_seed(0)  # init values are overwritten; seeding keeps construction cheap and repeatable
    return spec, cfg, spec.model_cls(cfg)


def _read_qparams(reader: Reader, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    raw = reader.take(4 * rows)
    arr = np.frombuffer(raw, dtype="<f2").astype(np.float16)
    offset, scale = torch.from_numpy(arr[:rows].copy()), torch.from_numpy(arr[rows:].copy())
    if not (torch.isfinite(offset).all() and torch.isfinite(scale).all() and (scale > 0).all()):
        raise BitstreamError("invalid quantization parameters")
    return offset, scale


def decode_model(data: bytes) -> tuple[ModelSpec, object, nn.Module, dict]:
    """bytes -> (spec, config, model on CPU in eval mode, header). Raises BitstreamError."""
    box = bitstream.read(data)
    header = box.header
    _check_signal(header.get("signal"))
    spec, cfg, model = _build(header)
    try:
        return _load_tensors(box, spec, cfg, model, header)
    except entropy.EntropyError as exc:
        raise BitstreamError(str(exc)) from None


def _load_tensors(box, spec, cfg, model, header):
    for tag in ("QPRM", "WGTS"):
        if tag not in box.sections:
            raise BitstreamError(f"missing section {tag}")
    qprm, wgts = Reader(box.sections["QPRM"]), Reader(box.sections["WGTS"])
    masks = Reader(box.sections.get("MASK", b""))
    params = dict(model.named_parameters())
    for rec in header["tensors"]:
        bits = rec.get("bits")
        if not isinstance(bits, int) or not 2 <= bits <= 16:
            raise BitstreamError("invalid bit depth")
        shape = tuple(rec["shape"])
        n = math.prod(shape)
        offset, scale = _read_qparams(qprm, row_count(shape))
        if rec.get("pruned"):
            m = entropy.decode_mask(masks, n)
            kept = entropy.decode_symbols(wgts, int(m.sum()), 2**bits)
            symbols = np.zeros(n, dtype=np.int32)
            symbols[m.astype(bool)] = kept
            mask = torch.from_numpy(m.astype(np.float32)).reshape(shape)
        else:
            symbols, mask = entropy.decode_symbols(wgts, n, 2**bits), None
        w = dequantize(torch.from_numpy(symbols).reshape(shape), offset, scale)
        if mask is not None:
            w = w * mask
        with torch.no_grad():
            params[rec["name"]].copy_(w)
    for r, name in ((qprm, "QPRM"), (wgts, "WGTS"), (masks, "MASK")):
        if r.remaining:
            raise BitstreamError(f"section {name} has {r.remaining} unused bytes")
    if hasattr(model, "embed_shape"):
        model.embeddings = _load_embeddings(box, header, cfg, model)
    if spec.side_codec is not None:
        side = spec.side_codec()
        side.decode(model, header.get(side.header_key), box.sections)
    model.eval()
    return spec, cfg, model, header


def _load_embeddings(box, header, cfg, model) -> torch.Tensor:
    info = header.get("embeddings")
    if "EMBD" not in box.sections or not isinstance(info, dict):
        raise BitstreamError("missing embeddings")
    shape = tuple(info.get("shape", ()))
    if shape != (cfg.frames, *model.embed_shape):
        raise BitstreamError("embedding shape does not match the model")
    bits = info.get("bits")
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise BitstreamError("invalid embedding bit depth")
    r = Reader(box.sections["EMBD"])
    offset, scale = _read_qparams(r, row_count(shape))
    symbols = entropy.decode_symbols(r, math.prod(shape), 2**bits)
    if r.remaining:
        raise BitstreamError("section EMBD has unused bytes")
    return dequantize(torch.from_numpy(symbols).reshape(shape), offset, scale)


def info(data: bytes) -> dict:
    """Header plus a byte breakdown that sums to the file size."""
    box = bitstream.read(data)
    breakdown = dict(box.sizes)
    total = sum(breakdown.values())
    return {"bytes": len(data), "accounted": total, "breakdown": breakdown, "header": box.header}
