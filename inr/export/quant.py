"""Uniform quantization per output row, with a straight-through fake-quant for QAT.

A row (a conv/linear output channel, or a whole tensor when rows would be tiny) is mapped
to integers q in [0, 2^b - 1] by w ~ offset + q * scale, offset = row min, scale =
(max - min) / (2^b - 1). offset and scale are rounded to float16 *before* q is computed, and
`dequantize` is the single function both QAT and the file decoder use, so the weights the
encoder trained against are bit-identical to the ones a decoder rebuilds.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MIN_ROW_ELEMENTS = 8  # rows smaller than this would spend more on (offset, scale) than they save
MAX_ROWS = 4096
TINY_SCALE = 2.0**-24  # smallest float16 subnormal: keeps constant rows decodable


def row_count(shape: tuple[int, ...] | torch.Size) -> int:
    """How many quantization rows a tensor of this shape is split into."""
    shape = tuple(shape)
    if len(shape) >= 2 and shape[0] <= MAX_ROWS:
        numel = 1
        for s in shape:
            numel *= s
        if numel // shape[0] >= MIN_ROW_ELEMENTS:
            return shape[0]
    return 1


@dataclass
class Quantized:
    q: torch.Tensor  # int32, same shape as the tensor
    offset: torch.Tensor  # float16, (rows,)
    scale: torch.Tensor  # float16, (rows,)
    bits: int


def quant_params(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = w.detach().reshape(row_count(w.shape), -1).float()
    lo, hi = rows.min(dim=1).values, rows.max(dim=1).values
    scale = ((hi - lo) / (2**bits - 1)).clamp_min(TINY_SCALE)
    return lo.to(torch.float16), scale.to(torch.float16)


def quantize(w: torch.Tensor, bits: int) -> Quantized:
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in 2..16, got {bits}")
    offset, scale = quant_params(w, bits)
    rows = w.detach().reshape(offset.shape[0], -1).float()
    q = torch.round((rows - offset.float()[:, None]) / scale.float()[:, None]).clamp(0, 2**bits - 1)
    return Quantized(q.to(torch.int32).reshape(w.shape), offset, scale, bits)


def dequantize(q: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    rows = q.reshape(offset.shape[0], -1).to(dtype)
    return (offset.to(dtype)[:, None] + rows * scale.to(dtype)[:, None]).reshape(q.shape)


def fake_quant(w: torch.Tensor, bits: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Quantize-dequantize. With gradients on, a straight-through estimator (identity
    gradient); without, the exact decoder values (w + (x - w) is not always x in floats)."""
    src = w * mask if mask is not None else w
    qt = quantize(src, bits)
    x = dequantize(qt.q, qt.offset, qt.scale, dtype=w.dtype)
    if mask is not None:
        x = x * mask
    if torch.is_grad_enabled() and w.requires_grad:
        return src + (x - src).detach()
    return x


class FakeQuant(nn.Module):
    """Parametrization: weight -> fake_quant(weight) (and the pruning mask, if any)."""

    def __init__(self, bits: int, mask: torch.Tensor | None = None):
        super().__init__()
        self.bits = bits
        if mask is not None:
            self.register_buffer("mask", mask)
        else:
            self.mask = None

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quant(w, self.bits, self.mask)


class Mask(nn.Module):
    """Parametrization: weight -> weight * mask, so pruned entries stay exactly zero while
    the rest are fine-tuned."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask
