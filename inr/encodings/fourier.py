"""Fourier encodings: deterministic NeRF-style bands and Gaussian random features.

Both take frequencies far above float32's resolution (NeRV's band 79 is 1.25^79 pi ~ 1.4e8
rad per unit input, where a float32 angle has a spacing of 8 rad and its sine is noise), so
the angle is formed in float64 and reduced modulo one period *before* anything is rounded to
the working precision: sin(pi a) = sin(pi (a - 2 round(a / 2))), and the subtraction of an
even integer is exact in float64. The reduced angle lies in [-pi, pi], where float32 is
accurate to its last bit. The official NeRV/HNeRV code gets the same effect by accident (its
data loader hands the frame index over as a float64).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from inr.encodings.prng import gaussian_matrix


def float64_device(device: torch.device) -> torch.device:
    """MPS has no float64: the (tiny) angle computation runs on the CPU there."""
    return torch.device("cpu") if device.type == "mps" else device


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.float32


def exact_powers(base: float, levels: int) -> tuple[float, ...]:
    """base^k for k < levels, each correctly rounded to float64 (computed as exact rationals),
    so the frequencies, and with them every decoded frame, do not depend on the C library."""
    b = Fraction(base)
    return tuple(float(b**k) for k in range(levels))


def _float32(value: Fraction) -> Fraction:
    """`value` rounded to the nearest float32 (ties to even), exactly: a float64 detour can
    round twice."""
    x = np.float32(float(value))
    near = (np.nextafter(x, np.float32(-np.inf)), x, np.nextafter(x, np.float32(np.inf)))
    best = min(near, key=lambda c: (abs(Fraction(float(c)) - value), int(np.float32(c).view(np.uint32)) & 1))
    return Fraction(float(best))


def float32_bands(base: float, levels: int) -> tuple[float, ...]:
    """The band frequencies of the official NeRV/HNeRV code, in units of pi: its frequencies are
    float32(float32(b^k) x float32(pi)) (a float32 tensor of powers times pi), used in float64
    arithmetic. Here each rounding is exact (no C library involved) and the result is divided
    by pi in float64 (one correctly rounded IEEE division), so it plugs into the exact reduction."""
    pi32 = _float32(Fraction(math.pi))
    return tuple(float(_float32(_float32(Fraction(base) ** k) * pi32)) / math.pi for k in range(levels))


BANDS = ("exact", "float32")


class PositionalEncoding(nn.Module):
    """gamma(x) = [sin(f_k pi x), cos(f_k pi x)] for k < levels (NeRF; NeRV uses b=1.25, 80 levels).

    `bands` picks f_k: "exact" is b^k itself; "float32" is what the official NeRV/HNeRV code
    computes (b^k pi rounded to float32, see `float32_bands`). They are equally exact
    encodings of different frequencies, and not equally good: at 30 epochs on Bunny
    320x160x32, NeRV 0.15M reaches 19.24 / 20.23 dB (seeds 0 / 1) with "float32" and 18.66 /
    18.89 dB with "exact" (bench/bench_video.py, README "Faithful to the papers"), the
    official code 19.26 / 19.98 dB.

    `include_input` prepends x itself, which coordinate MLPs like but NeRV does not use. The
    input should be float64 when it carries more precision than float32 (NeRV's idx / T);
    the output is float32 (or the input's lower float type).
    """

    def __init__(self, in_dim: int, levels: int, base: float = 2.0, include_input: bool = False, bands: str = "exact"):
        super().__init__()
        if bands not in BANDS:
            raise ValueError(f"bands must be one of {BANDS}, got {bands!r}")
        self.in_dim, self.levels, self.base, self.include_input = in_dim, levels, base, include_input
        # A tuple, not a buffer: `module.float()` or `.half()` must never round the frequencies.
        self.powers = exact_powers(base, levels) if bands == "exact" else float32_bands(base, levels)

    @property
    def out_dim(self) -> int:
        return self.in_dim * (2 * self.levels + int(self.include_input))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dev = float64_device(x.device)
        x64 = x.to(dev, torch.float64)
        powers = torch.tensor(self.powers, dtype=torch.float64, device=dev)
        a = (x64[..., :, None] * powers).flatten(-2)  # (..., in_dim * levels): angle / pi
        ang = math.pi * (a - 2.0 * torch.round(a * 0.5))  # exact reduction to [-pi, pi]
        parts = [torch.sin(ang), torch.cos(ang)]
        if self.include_input:
            parts.insert(0, x64)
        return torch.cat(parts, dim=-1).to(x.device, _out_dtype(x))


class GaussianFourierFeatures(nn.Module):
    """[sin(2 pi B x), cos(2 pi B x)] with B ~ sigma * N(0, 1) fixed at init (Tancik et al. 2020).

    B is a buffer, not a parameter: it is regenerated from `seed` at load time by the
    format-defined generator in `inr.encodings.prng` (docs/bitstream.md, "Fourier features"),
    so it costs no bits in a compressed file and does not depend on torch's RNG.
    """

    def __init__(self, in_dim: int, num_features: int = 256, sigma: float = 10.0, seed: int = 0):
        super().__init__()
        self.in_dim, self.num_features, self.sigma = in_dim, num_features, sigma
        self.register_buffer("B", torch.tensor(gaussian_matrix(seed, in_dim, num_features, sigma)), persistent=False)

    @property
    def out_dim(self) -> int:
        return 2 * self.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dev = float64_device(x.device)
        # B x in float64 (in_dim terms: cheap), reduced to one period, then the working precision.
        y = x.to(dev, torch.float64) @ self.B.to(dev, torch.float64)
        frac = (y - torch.round(y)).to(x.device, _out_dtype(x))
        ang = (2 * math.pi) * frac
        return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)
