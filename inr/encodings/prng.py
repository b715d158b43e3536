"""The random numbers a decoder must regenerate, defined by this file and docs/bitstream.md.

A `.inr` file does not store the Fourier-feature matrix of the `ffn` family; the decoder
rebuilds it from the config's seed. That only works if the generator is part of the format,
so it is not torch's RNG (whose stream may change between releases) but SplitMix64 (Steele,
Lea & Flood 2014), a counter-based 64-bit generator, and the normal deviates are made with
integer arithmetic only (Irwin-Hall: a sum of 12 uniforms, centred), so every machine
produces the same bits. Tancik et al. (2020, Sec. 6) found that the shape of the feature
distribution hardly matters, only its scale; Irwin-Hall(12) has variance exactly 1 and
differs from N(0, 1) by < 0.01 in its CDF, with tails cut at 6 sigma.
"""
from __future__ import annotations

import numpy as np

GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1
IRWIN_HALL_TERMS = 12


def splitmix64(seed: int, count: int) -> np.ndarray:
    """The first `count` outputs of SplitMix64 seeded with `seed`, as uint64.

    Output c is mix(seed + (c + 1) * GOLDEN_GAMMA mod 2^64), so any element can be computed on
    its own (counter-based); vectorised here with numpy's wrapping uint64 arithmetic.
    """
    if not 0 <= seed <= MASK64:
        raise ValueError(f"seed must be in [0, 2^64), got {seed}")
    counter = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + counter * np.uint64(GOLDEN_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def standard_normals(seed: int, count: int) -> np.ndarray:
    """`count` approximately N(0, 1) deviates as float64, exactly reproducible everywhere.

    Deviate j uses words 12j .. 12j+11: with u = word >> 32 (the top 32 bits),
    n_j = (sum(2u + 1) - 12 * 2^32) / 2^33. The sum is an integer below 2^37, so the float64
    value is exact; no transcendental function is involved.
    """
    u = (splitmix64(seed, count * IRWIN_HALL_TERMS) >> np.uint64(32)).astype(np.int64)
    sums = (2 * u + 1).reshape(count, IRWIN_HALL_TERMS).sum(axis=1) - IRWIN_HALL_TERMS * (1 << 32)
    return sums.astype(np.float64) / float(1 << 33)


def gaussian_matrix(seed: int, rows: int, cols: int, sigma: float) -> np.ndarray:
    """(rows, cols) float32 matrix, filled row-major: float32(sigma * n_j), product in float64."""
    return (standard_normals(seed, rows * cols) * float(sigma)).astype(np.float32).reshape(rows, cols)
