"""Step-quantized network weights in one ANS stream: section NETW.

Why a second weight scheme: a rate-aware file of a few kilobytes carries a network of a few
hundred weights, and the per-row scheme (QPRM + WGTS, `quant.py` / `entropy.py`) was built for
networks of hundreds of thousands. On a 256x256 grid image at 0.5 bpp (4.4 KB) it spent 160
bytes on per-row float16 ranges, about 15 bytes a tensor on entropy-model parameters, stream
state and word padding, and 108 header bytes on the tensor list: 1.2 KB of overhead, 27 % of
the file, more than half of it at 0.25 bpp. Here every tensor is one step away from its
integers (w = q x step, q signed), described by three bytes, and the whole network is one ANS
stream whose tensor list the decoder takes from the model config (the header says only
`"weights": "steps"`).

Payload, tensors in the model's `stored_tensors()` order:
    per tensor: u8 e (step), u8 m (|q| < 2^m), u8 j (Laplace scale)
    then u32 little-endian ANS words (constriction `AnsCoder`) to the end of the section:
    each tensor with m > 0, in order, its values row-major under
    QuantizedLaplace(-(2^m - 1), 2^m - 1, mean 0, scale(j)).
step(e) = (4 + e % 4) x 2^(e // 4 - 26) and scale(j) = (8 + j % 8) / 8 x 2^(j // 8 - 8) have
three significant bits, so both sides compute them exactly and q x step is exact in float32.
"""
from __future__ import annotations

import math

import constriction
import numpy as np
import torch

from inr.bitstream import BitstreamError
from inr.export.entropy import ans_bytes, ans_decoder, ans_finish

MAX_E = 127  # step(127) = 7 x 2^5 = 224: far above any weight a fit produces
MAX_M = 16  # |q| < 2^16
TENSOR_BYTES = 3


def step_of(e: int) -> float:
    """The quantization step a tensor's `e` stands for (exact in float32)."""
    return math.ldexp(4 + (e & 3), (e >> 2) - 26)


def scale_of(j: int) -> float:
    """The Laplace scale a tensor's `j` stands for."""
    return math.ldexp(8 + (j & 7), (j >> 3) - 11)


def step_for(w: torch.Tensor, bits: int) -> int:
    """The finest `e` whose step reaches max |w| within 2^(bits - 1) - 1 levels each way, so
    `bits` plays the role the per-row scheme's bit depth plays (the RD search tries depths)."""
    peak = float(w.detach().abs().max()) if w.numel() else 0.0
    levels = 2 ** (bits - 1) - 1
    for e in range(MAX_E + 1):
        if step_of(e) * levels >= peak:
            return e
    raise ValueError(f"a weight of magnitude {peak:g} is beyond the step scheme")


def quantize(w: torch.Tensor, e: int) -> torch.Tensor:
    """Integers q (int64) of `w` at step e."""
    q = torch.round(w.detach().double() / step_of(e))
    if q.numel() and float(q.abs().max()) >= 2**MAX_M:
        raise ValueError("a weight is beyond the step's range")
    return q.long()


def dequantize(q: torch.Tensor, e: int) -> torch.Tensor:
    """The decoder's weights: q x step(e) in float32 (exact: both have few significant bits)."""
    return q.to(torch.float32) * step_of(e)


def _laplace_bits(q: np.ndarray, bound: int, scale: float) -> float:
    """About what QuantizedLaplace(-bound, bound, 0, scale) charges for `q` (the choice of j
    needs the right minimum, not constriction's last bit)."""
    a = np.abs(q.astype(np.float64))
    cdf_hi = np.exp(-(a + 0.5) / scale)  # tail mass beyond |q| + 0.5 on one side, times 2
    cdf_lo = np.exp(-np.maximum(a - 0.5, 0) / scale)
    p = np.where(a == 0, 1 - cdf_hi, 0.5 * (cdf_lo - cdf_hi))
    norm = 1 - math.exp(-(bound + 0.5) / scale)
    return float(-np.log2(np.maximum(p / norm, 2.0**-24)).sum())


def best_scale(q: np.ndarray, bound: int) -> int:
    """The j whose Laplace codes `q` in the fewest bits, near the maximum-likelihood scale."""
    mean_abs = max(float(np.abs(q).mean()), 0.05)
    centre = int(round(8 * (math.log2(mean_abs) + 8)))
    candidates = range(max(0, centre - 16), min(255, centre + 16) + 1)
    return min(candidates, key=lambda j: _laplace_bits(q, bound, scale_of(j)))


def _model(m: int, j: int):
    bound = 2**m - 1
    return constriction.stream.model.QuantizedLaplace(-bound, bound, 0.0, scale_of(j))


def encode_network(tensors: dict[str, torch.Tensor], steps: dict[str, int]) -> bytes:
    """The NETW payload of `tensors` (float, in file order), each at its step index."""
    table = bytearray()
    coded: list[tuple[np.ndarray, int, int]] = []
    for name, w in tensors.items():
        e = steps[name]
        q = quantize(w, e).numpy().ravel().astype(np.int32)
        m = int(np.abs(q).max()).bit_length() if q.size else 0
        j = best_scale(q, 2**m - 1) if m else 0
        table += bytes([e, m, j])
        if m:
            coded.append((q, m, j))
    coder = constriction.stream.stack.AnsCoder()
    for q, m, j in reversed(coded):  # a stack: the first tensor is coded last, decoded first
        coder.encode_reverse(q, _model(m, j))
    return bytes(table) + ans_bytes(coder)


def network_table(payload: bytes | memoryview, names: list[str]) -> list[tuple[int, int, int]]:
    """The (e, m, j) of each of `names` (the model's tensors, in file order) from the head of a
    NETW payload. Raises BitstreamError for a short or out-of-range table."""
    if len(payload) < TENSOR_BYTES * len(names):
        raise BitstreamError("section NETW is shorter than its tensor table", part="payload")
    table = [tuple(payload[TENSOR_BYTES * i : TENSOR_BYTES * (i + 1)]) for i in range(len(names))]
    for name, (e, m, _) in zip(names, table):
        if e > MAX_E or m > MAX_M:
            raise BitstreamError(f"section NETW: invalid step or range for {name}", part="payload")
    return table


def decode_network(payload: bytes, shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Tensors (float32) of a NETW payload whose tensor list is `shapes` (the model's, in file
    order). Raises BitstreamError for anything malformed."""
    table = network_table(payload, list(shapes))
    if len(payload) == TENSOR_BYTES * len(shapes) and any(m and math.prod(shape) for (_, m, _), shape in zip(table, shapes.values())):
        raise BitstreamError("section NETW has no stream for its coded tensors", part="payload")
    coder = ans_decoder(payload[TENSOR_BYTES * len(shapes) :], "NETW")
    out = {}
    for (name, shape), (e, m, j) in zip(shapes.items(), table):
        n = math.prod(shape)
        if m and n:
            try:
                q = np.asarray(coder.decode(_model(m, j), n), dtype=np.int64)
            except Exception as exc:  # constriction raises on an exhausted or corrupt stream
                raise BitstreamError(f"section NETW: decoding {name} failed ({type(exc).__name__})", part="payload") from None
        else:
            q = np.zeros(n, dtype=np.int64)
        out[name] = dequantize(torch.from_numpy(q).reshape(shape), e)
    ans_finish(coder, "NETW")
    return out


def quantized_network(tensors: dict[str, torch.Tensor], steps: dict[str, int]) -> dict[str, torch.Tensor]:
    """The weights a decoder of `encode_network(tensors, steps)` rebuilds."""
    return {name: dequantize(quantize(w.cpu(), steps[name]), steps[name]) for name, w in tensors.items()}
