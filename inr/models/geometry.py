"""Upsampling geometry for frame-wise decoders: which strides turn a tiny base map into H x W.

The total stride P must divide both H and W (PixelShuffle upsamples exactly), so it is taken
from the 2/3/5-smooth part of gcd(H, W), as large as possible while the base map keeps its
short side >= `min_base`; P is then split into at most `max_stages` strides no larger than 5
(merging 2x2 into 4), largest first: 1280x720 -> 5,2,2,2,2 (base 9x16); 1280x640 with
min_base 2 -> 5,4,4,2,2 (base 2x4). Sizes without such a factorisation are padded up to a
multiple of the smallest power of two that works; the decoder output is cropped back, so users never see padding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from inr.errors import InrError


@dataclass(frozen=True)
class Geometry:
    height: int
    width: int
    pad_height: int
    pad_width: int
    strides: tuple[int, ...]

    @property
    def total_stride(self) -> int:
        return math.prod(self.strides)

    @property
    def base(self) -> tuple[int, int]:
        return self.pad_height // self.total_stride, self.pad_width // self.total_stride


def _smooth_factors(n: int) -> list[int]:
    out = []
    for p in (5, 3, 2):
        while n % p == 0:
            out.append(p)
            n //= p
    return out


def split_strides(total: int, max_stages: int) -> tuple[int, ...]:
    """Split a 2/3/5-smooth total stride into <= max_stages factors, each <= 5, descending."""
    factors = sorted(_smooth_factors(total), reverse=True)
    if math.prod(factors) != total:
        raise ValueError(f"{total} is not 2/3/5-smooth")
    while len(factors) > max_stages and factors.count(2) >= 2:
        factors.remove(2)
        factors.remove(2)
        factors.append(4)
        factors.sort(reverse=True)
    return tuple(factors)


def _best_total(height: int, width: int, min_base: int, max_stages: int) -> int:
    g = math.gcd(height, width)
    smooth = math.prod(_smooth_factors(g))
    best = 1
    for d in range(1, smooth + 1):
        if smooth % d == 0 and min(height, width) // d >= min_base and len(split_strides(d, 99)) and d > best:
            if len(split_strides(d, max_stages)) <= max_stages:
                best = d
    return best


def derive_geometry(height: int, width: int, min_base: int, max_base: int, max_stages: int = 5) -> Geometry:
    if height < 1 or width < 1:
        raise InrError(f"impossible frame size {width}x{height}")
    if min(height, width) < min_base:
        raise InrError(f"frame {width}x{height} is too small for this model (short side must be >= {min_base})")
    total = _best_total(height, width, min_base, max_stages)
    if min(height, width) // total <= max_base:
        return Geometry(height, width, height, width, split_strides(total, max_stages))
    # No exact factorisation gives a small base map: pad to the smallest multiple of 2^k that does.
    for k in range(1, 3 * max_stages):
        unit = 2**k
        ph, pw = -(-height // unit) * unit, -(-width // unit) * unit
        total = _best_total(ph, pw, min_base, max_stages)
        if min(ph, pw) // total <= max_base:
            return Geometry(height, width, ph, pw, split_strides(total, max_stages))
    raise InrError(f"cannot find an upsampling layout for {width}x{height}; use --resize or --crop")
