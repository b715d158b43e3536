"""Bjontegaard delta rate and PSNR.

`pchip` (default) follows the JCT-VC/JVET common-test-conditions sheet and CompressAI:
log-rate is interpolated as a piecewise cubic Hermite function of PSNR (and PSNR of
log-rate for BD-PSNR), integrated exactly over the overlapping interval. `cubic` is the
original VCEG-M33 least-squares third-order polynomial, kept for comparison with older
numbers. BD-rate is in percent: negative means the test curve needs fewer bits than the
reference for the same quality.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def _prepare(rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.size < 2:
        raise ValueError("each curve needs at least two (rate, quality) points")
    if (r <= 0).any() or not np.isfinite(q).all():
        raise ValueError("rates must be positive and qualities finite")
    return np.log(r), q


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    order = np.argsort(x)
    x, y = x[order], y[order]
    if method == "pchip":
        if len(np.unique(x)) != len(x):
            raise ValueError("duplicate quality values on one curve")
        return float(PchipInterpolator(x, y).integrate(lo, hi))
    if method == "cubic":
        p = np.polyint(np.polyfit(x, y, min(3, len(x) - 1)))
        return float(np.polyval(p, hi) - np.polyval(p, lo))
    raise ValueError(f"unknown BD method {method!r}")


def bd_rate(rate_ref, psnr_ref, rate_test, psnr_test, method: str = "pchip") -> float:
    """Average rate difference (%) of test vs reference over their common PSNR range; NaN
    when the curves do not overlap in quality."""
    lr1, q1 = _prepare(rate_ref, psnr_ref)
    lr2, q2 = _prepare(rate_test, psnr_test)
    lo, hi = max(q1.min(), q2.min()), min(q1.max(), q2.max())
    if not hi > lo:
        return math.nan
    avg = (_integral(q2, lr2, lo, hi, method) - _integral(q1, lr1, lo, hi, method)) / (hi - lo)
    return (math.exp(avg) - 1) * 100


def bd_psnr(rate_ref, psnr_ref, rate_test, psnr_test, method: str = "pchip") -> float:
    """Average PSNR difference (dB) of test vs reference over their common log-rate range."""
    lr1, q1 = _prepare(rate_ref, psnr_ref)
    lr2, q2 = _prepare(rate_test, psnr_test)
    lo, hi = max(lr1.min(), lr2.min()), min(lr1.max(), lr2.max())
    if not hi > lo:
        return math.nan
    return (_integral(lr2, q2, lo, hi, method) - _integral(lr1, q1, lo, hi, method)) / (hi - lo)
