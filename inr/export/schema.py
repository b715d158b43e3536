"""The `.inr` header schema: every field typed, ranged and cross-checked before anything is built.

A hostile header behind valid CRCs must end in one `BitstreamError` line, quickly and without
allocating, so the header is checked in an order where each step is bounded by the ones before:

1. structure: the JSON type of every field the decoder or `inr info` reads (`check_structure`);
2. the signal: kind, shape, frames, sides and output values within `LIMITS`;
3. the model config: each field's JSON type follows the config dataclass's annotation and its
   range the config class's `LIMITS` table (fields it does not list get `DEFAULT_RANGES`), then
   the config's own `validate()` if it has one (cross-field rules);
4. cost and consistency: the model is built on the meta device (no memory), fit-time-only
   modules included, and its parameters are counted; one render batch is run on meta tensors,
   which checks that the model's output matches the header's signal shape and measures the
   FLOPs and the largest intermediate tensor of a full decode; the header's tensor list must
   name exactly the model's stored tensors.

New model families plug in without editing this file: the config class brings `LIMITS` (and
optionally `validate()`); the representation brings `decode_probe(shape)` (see `Probe`),
`for_decoding` and `stored_tensors` (inr.models.representation).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from inr.bitstream import BitstreamError
from inr.errors import InrError
from inr.export.entropy import coder_names
from inr.models.registry import ModelSpec, config_from_dict, get_spec

# Decoder-wide limits. Memory of a decode is about output values x 4 bytes plus a few times the
# largest intermediate tensor; work is the FLOPs of every render batch.
LIMITS = {
    "params": 64_000_000,  # parameters built or stored (fit-time-only modules and embeddings included)
    "side": 16384,  # frame height / width
    "frames": 100_000,
    "channels": 16,
    "output_values": 1 << 30,  # samples x channels: 4 GiB as float32
    "tensor_bytes": 4 << 30,  # largest intermediate tensor of one render batch
    "flops": 1e15,  # whole decode
    "tensors": 4096,  # entries in the header's tensor list
    "tensor_dims": 8,
    "text": 1024,  # characters in a free-text field
    "fps": 1e6,
    "sample_rate": 1_000_000,  # audio samples per second
}
# Ranges for config fields whose class does not list them: generous for widths, tight enough
# that a meta build stays fast. Strings: at most 64 characters; tuples: at most 8 items.
DEFAULT_RANGES: dict[type, tuple[float, float]] = {int: (0, 1 << 16), float: (-1e6, 1e6)}
MAX_TUPLE = 8
# How the stored tensors are coded: "rows" (QPRM / MASK / WGTS, listed in `tensors`; every file
# before 2026-11-30 and a header without the key) or "steps" (section NETW, inr/export/netcode.py:
# the tensor list is the model's).
WEIGHT_SCHEMES = ("rows", "steps")
SIGNAL_DIMS = {"image": 3, "video": 4, "audio": 2}  # shape rank per kind, channels last
BITS = (2, 16)


def weight_scheme(header: dict) -> object:
    """The header's `weights` field, "rows" where it is absent (older files); unchecked until
    `check_structure` has run."""
    return header.get("weights", "rows")


def _fail(message: str, part: str = "header") -> BitstreamError:
    return BitstreamError(message, part=part)


def _show(value: Any) -> str:
    """A short, one-line rendering of a hostile value for error messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A finite JSON number (json.loads reads NaN and Infinity, and ints of any size)."""
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def _int(v: Any, what: str, lo: int, hi: int) -> int:
    if not _is_int(v):
        raise _fail(f"header {what} must be an integer, got {_show(v)}")
    if not lo <= v <= hi:
        raise _fail(f"header {what} = {_show(v)} is outside [{lo}, {hi}]", "limits")
    return v


def _text(v: Any, what: str, max_len: int = LIMITS["text"]) -> str:
    if not isinstance(v, str):
        raise _fail(f"header {what} must be a string, got {_show(v)}")
    if len(v) > max_len:
        raise _fail(f"header {what} is longer than {max_len} characters")
    return v


def _int_list(v: Any, what: str, max_len: int, lo: int, hi: int) -> list[int]:
    if not isinstance(v, list) or len(v) > max_len:
        raise _fail(f"header {what} must be a list of at most {max_len} integers")
    return [_int(x, f"{what}[{i}]", lo, hi) for i, x in enumerate(v)]


check_int = _int  # public for the GOP index (inr.export.gop), which checks its fields the same way


def _dict(v: Any, what: str) -> dict:
    if not isinstance(v, dict):
        raise _fail(f"header {what} must be an object, got {_show(v)}")
    return v


# ------------------------------------------------------------------ 1 + 2: structure, signal
def check_structure(header: dict) -> None:
    """JSON types of every field `inr info` prints and the decoder reads; no model is looked up."""
    _text(header.get("model"), "model", 64)
    _dict(header.get("config"), "config")
    _check_signal(_dict(header.get("signal"), "signal"))
    tensors = header.get("tensors")
    if not isinstance(tensors, list):
        raise _fail(f"header tensors must be a list, got {_show(tensors)}")
    if len(tensors) > LIMITS["tensors"]:
        raise _fail(f"header lists {len(tensors)} tensors (limit {LIMITS['tensors']})", "limits")
    weights = weight_scheme(header)
    if weights not in WEIGHT_SCHEMES:
        raise _fail(f"header weights must be one of {list(WEIGHT_SCHEMES)}, got {_show(weights)}")
    if weights == "steps" and tensors:
        raise _fail("header lists tensors, but its weights are step-quantized (section NETW lists none)")
    names: set[str] = set()
    for i, rec in enumerate(tensors):
        _check_record(_dict(rec, f"tensors[{i}]"), f"tensors[{i}]")
        if rec["name"] in names:
            raise _fail(f"header lists tensor {_show(rec['name'])} twice")
        names.add(rec["name"])
    if "colour" in header:
        _text(header["colour"], "colour")


def _coder(v: Any, what: str) -> None:
    if not isinstance(v, str) or v not in coder_names():
        raise _fail(f"header {what} must be one of {coder_names()}, got {_show(v)}")


def _check_record(rec: dict, what: str) -> None:
    _text(rec.get("name"), f"{what} name", 256)
    _int_list(rec.get("shape"), f"{what} shape", LIMITS["tensor_dims"], 0, 1 << 31)
    _int(rec.get("bits"), f"{what} bits", *BITS)
    if not isinstance(rec.get("pruned"), bool):
        raise _fail(f"header {what} pruned must be true or false")
    _coder(rec.get("coder"), f"{what} coder")
    _int(rec.get("bytes"), f"{what} bytes", 0, 1 << 40)


def _check_signal(meta: dict, streamed: bool = False) -> None:
    """`streamed`: the signal of a GOP index, decoded a GOP at a time, so its output-values
    limit (the memory of a whole decode) is each GOP's own, checked in that GOP's header;
    a 600-frame 1080p file (3.7e9 values) was refused whole."""
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in SIGNAL_DIMS:
        raise _fail(f"header signal kind must be one of {sorted(SIGNAL_DIMS)}, got {_show(kind)}")
    shape = _int_list(meta.get("shape"), "signal shape", 4, 1, 1 << 62)
    if len(shape) != SIGNAL_DIMS[kind]:
        raise _fail(f"header signal shape {shape} does not fit a {kind} (needs {SIGNAL_DIMS[kind]} dimensions)")
    if shape[-1] > LIMITS["channels"]:
        raise _fail(f"signal has {shape[-1]} channels (limit {LIMITS['channels']})", "limits")
    if kind != "audio" and any(s > LIMITS["side"] for s in shape[-3:-1]):
        raise _fail(f"signal {shape} exceeds this decoder's side limit of {LIMITS['side']}", "limits")
    if kind == "video" and shape[0] > LIMITS["frames"]:
        raise _fail(f"signal has {shape[0]} frames (limit {LIMITS['frames']})", "limits")
    if not streamed and math.prod(shape) > LIMITS["output_values"]:
        raise _fail(f"signal {shape} has more than {LIMITS['output_values']} output values", "limits")
    if "fps" in meta and not (_is_number(meta["fps"]) and 0 < meta["fps"] <= LIMITS["fps"]):
        raise _fail(f"header signal fps must be a number in (0, {LIMITS['fps']:g}], got {_show(meta['fps'])}")
    if kind == "audio" or "sample_rate" in meta:  # audio is written back at the rate it was read
        _int(meta.get("sample_rate"), "signal sample_rate", 1, LIMITS["sample_rate"])
    for key in ("crop", "resize"):
        if meta.get(key) is not None:
            _int_list(meta[key], f"signal {key}", 2, 1, 1 << 20)
    if "source" in meta:
        _text(meta["source"], "signal source")


check_signal = _check_signal  # public for the GOP index (inr.export.gop)


# ------------------------------------------------------------------ 3: model config
def field_range(config_cls: type, name: str, typ: type) -> tuple:
    """The config class's `LIMITS[name]` if given, else the default range for its type."""
    limits = getattr(config_cls, "LIMITS", {})
    return limits.get(name, DEFAULT_RANGES.get(typ, ()))


def _check_value(config_cls: type, name: str, hint: Any, v: Any) -> None:
    what = f"config {name}"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:  # Optional[...]
        if v is not None:
            _check_value(config_cls, name, next(a for a in args if a is not type(None)), v)
        return
    if origin is tuple:
        n = None if len(args) == 2 and args[1] is Ellipsis else len(args)
        if not isinstance(v, list) or not (len(v) == n if n is not None else 1 <= len(v) <= MAX_TUPLE):
            raise _fail(f"header {what} must be a list of {n or f'1 to {MAX_TUPLE}'} values, got {_show(v)}")
        for i, x in enumerate(v):
            _check_value(config_cls, name, args[0 if n is None else i], x)
        return
    if hint is bool:
        if not isinstance(v, bool):
            raise _fail(f"header {what} must be true or false, got {_show(v)}")
        return
    if hint is str:
        choices = getattr(config_cls, "LIMITS", {}).get(name)
        _text(v, what, 64)
        if choices is not None and v not in choices:
            raise _fail(f"header {what} must be one of {list(choices)}, got {_show(v)}")
        return
    if hint not in (int, float):
        raise _fail(f"header {what} has a type this decoder cannot check ({hint})")
    if not (_is_int(v) if hint is int else _is_number(v)):
        raise _fail(f"header {what} must be {'an integer' if hint is int else 'a finite number'}, got {_show(v)}")
    lo, hi = field_range(config_cls, name, hint)
    if not lo <= v <= hi:
        raise _fail(f"header {what} = {_show(v)} is outside [{lo}, {hi}]", "limits")


def check_config(spec: ModelSpec, data: dict) -> Any:
    """Typed, ranged config dataclass from header JSON; the class's `validate()` runs last."""
    cls = spec.config_cls
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k)[:40] for k in set(data) - fields)
    if unknown:
        raise _fail(f"header config for {spec.name} has unknown fields {unknown[:5]}")
    for name, value in data.items():
        _check_value(cls, name, hints[name], value)
    try:
        cfg = config_from_dict(spec, data)
        validate = getattr(cfg, "validate", None)
        if validate is not None:
            validate()
    except (InrError, ValueError, TypeError) as exc:
        raise _fail(f"header config for {spec.name} is inconsistent ({str(exc).splitlines()[0][:200]})") from None
    return cfg


# ------------------------------------------------------------------ 4: cost and consistency
@dataclass
class Probe:
    """One render batch on the meta device: `inputs` go to `model(*inputs)`, whose output must
    have `out_shape`; a full decode runs `batches` such batches."""

    inputs: tuple
    out_shape: tuple[int, ...]
    batches: int


class _LargestTensor(TorchDispatchMode):
    """Records the element count of the largest tensor any op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


@dataclass
class Plan:
    """What a header asks the decoder to build and run, all within `LIMITS`."""

    spec: ModelSpec
    config: Any
    tensors: dict[str, list[int]]  # stored tensors, in the model's order
    built_params: int  # every parameter of the full model, fit-time-only modules included
    flops: float  # whole decode
    largest_tensor_bytes: int


def check_header(header: dict) -> Plan:
    """Validate a whole header; raise `BitstreamError` (one line) for anything hostile."""
    check_structure(header)
    if "embeddings" in header:  # the EMBD section of early HNeRV files: embeddings are stored tensors now
        raise _fail("file stores HNeRV embeddings in the retired EMBD section: re-encode it with this version")
    try:
        spec = get_spec(header["model"])
    except InrError:
        raise _fail(f"header names an unknown model {_show(header['model'])}") from None
    kind, shape = header["signal"]["kind"], header["signal"]["shape"]
    if kind not in spec.signals:
        raise _fail(f"header model {spec.name} does not code {kind} signals")
    cfg = check_config(spec, header["config"])
    try:
        with torch.device("meta"):
            model = spec.model_cls(cfg)  # fit-time-only parts included: that is what `params` bounds
            decoder = spec.model_cls.for_decoding(cfg)
    except BitstreamError:
        raise
    except Exception as exc:  # ranges hold, but this combination does not make a model
        raise _fail(f"header config cannot build a {spec.name} model ({type(exc).__name__})") from None
    built = sum(p.numel() for p in model.parameters())
    total = built + sum(t.numel() for t in decoder.coded_buffers().values())
    if total > LIMITS["params"]:
        raise _fail(f"model would have {total} parameters (limit {LIMITS['params']})", "limits")
    flops, largest = _measure(decoder, shape)
    if flops > LIMITS["flops"]:
        raise _fail(f"decoding would take {flops:.2g} FLOPs (limit {LIMITS['flops']:.0e})", "limits")
    if largest > LIMITS["tensor_bytes"]:
        raise _fail(f"decoding would need a {largest >> 20} MiB intermediate tensor (limit {LIMITS['tensor_bytes'] >> 20} MiB)", "limits")
    expect = {n: list(t.shape) for n, t in decoder.stored_tensors().items()}
    got = {rec["name"]: rec["shape"] for rec in header["tensors"]}
    if weight_scheme(header) == "rows" and expect != got:
        raise _fail("header tensor list does not match the model config")
    return Plan(spec, cfg, expect, built, flops, largest)


def _measure(model: nn.Module, shape: list[int]) -> tuple[float, int]:
    """(FLOPs of the whole decode, bytes of its largest intermediate tensor), from one render
    batch (the family's `decode_probe`) on meta tensors."""
    with torch.device("meta"):
        probe = model.decode_probe(shape)
        counter, largest = FlopCounterMode(display=False), _LargestTensor()
        try:
            with torch.no_grad(), counter, largest:
                out = model.eval()(*probe.inputs)
        except Exception as exc:
            raise _fail(f"header config does not render the signal shape {shape} ({type(exc).__name__})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(probe.out_shape):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise _fail(f"model renders {got} per batch, the header's signal {shape} needs {tuple(probe.out_shape)}")
    return float(counter.get_total_flops()) * probe.batches, largest.numel * 4
