"""Quality metrics on RGB in [0, 1]: PSNR, SSIM, MS-SSIM.

SSIM/MS-SSIM come from pytorch-msssim (Gaussian window 11, sigma 1.5, the Wang et al.
constants). MS-SSIM needs the short side > (11 - 1) * 2^(scales - 1); small frames get
fewer scales with the standard weights renormalised, which the JSON reports say.
"""
from __future__ import annotations

import math

import torch
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def mse_to_psnr(mse: float, peak: float = 1.0) -> float:
    if mse <= 0:
        return float("inf")
    return 10.0 * math.log10(peak * peak / mse)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return mse_to_psnr(float(torch.mean((a.double() - b.double()) ** 2)))


def _nchw(x: torch.Tensor) -> torch.Tensor:
    """(H, W, C) or (N, H, W, C) channels-last -> (N, C, H, W) float."""
    if x.ndim == 3:
        x = x[None]
    return x.permute(0, 3, 1, 2).float()


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM of channels-last images (H, W, C) or batches (N, H, W, C)."""
    a4, b4 = _nchw(a).clamp(0, 1), _nchw(b).clamp(0, 1)
    win = min(11, min(a4.shape[-2:]) // 2 * 2 - 1)
    return float(_ssim(a4, b4, data_range=1.0, size_average=True, win_size=max(win, 3)))


def msssim_scales(height: int, width: int) -> int:
    short = min(height, width)
    for scales in range(5, 0, -1):
        if short > 10 * 2 ** (scales - 1):
            return scales
    return 1


def ms_ssim_frames(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Per-frame MS-SSIM of (N, H, W, C) batches."""
    a4, b4 = _nchw(a).clamp(0, 1), _nchw(b).clamp(0, 1)
    scales = msssim_scales(*a4.shape[-2:])
    if scales == 1:
        return [float(v) for v in _ssim(a4, b4, data_range=1.0, size_average=False)]
    w = torch.tensor(MSSSIM_WEIGHTS[:scales], dtype=torch.float32)
    vals = _ms_ssim(a4, b4, data_range=1.0, size_average=False, weights=(w / w.sum()).tolist())
    return [float(v) for v in vals]


def per_frame_psnr(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1)
    return [mse_to_psnr(float(m)) for m in mse]
