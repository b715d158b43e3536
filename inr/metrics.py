"""Quality metrics on RGB in [0, 1]: PSNR, SSIM, MS-SSIM.

SSIM/MS-SSIM come from pytorch-msssim (Gaussian window 11, sigma 1.5, the Wang et al.
constants). MS-SSIM needs the short side > (11 - 1) * 2^(scales - 1); small frames get
fewer scales with the standard weights renormalised, which the JSON reports say.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim as _ssim_cs

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def mse_to_psnr(mse: float, peak: float = 1.0) -> float:
    if mse <= 0:
        return float("inf")
    return 10.0 * math.log10(peak * peak / mse)


# Elements a metric holds in flight (float64 for the squared errors, float32 for SSIM's five
# filtered maps): metrics run on whole clips, and a 12-frame 1080p group of frames scored
# in one batch peaked at 5,371 MiB in MS-SSIM (its fit: 3,154 MiB at most).
CHUNK_ELEMENTS = 1 << 23


def _squared_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Sum of squared differences in float64, a chunk of elements at a time."""
    fa, fb = a.reshape(-1), b.reshape(-1)
    return sum(float(((fa[i : i + CHUNK_ELEMENTS].double() - fb[i : i + CHUNK_ELEMENTS].double()) ** 2).sum()) for i in range(0, fa.numel(), CHUNK_ELEMENTS))


def frame_chunks(frames: int, frame_elements: int) -> list[slice]:
    """The runs of frames a metric scores together: as many as CHUNK_ELEMENTS holds."""
    step = max(1, CHUNK_ELEMENTS // max(1, frame_elements))
    return [slice(i, i + step) for i in range(0, frames, step)]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return mse_to_psnr(_squared_error(a, b) / max(1, a.numel()))


def audio_snr(recon: torch.Tensor, target: torch.Tensor) -> float:
    """SNR (dB) of audio signals stored in [0, 1] (PCM x -> (x + 1) / 2): the power of the
    PCM signal over the power of the error. Unlike PSNR it does not depend on a peak, so a
    quiet clip is not scored as better than a loud one with the same relative error."""
    signal = float(torch.sum((target.double() - 0.5) ** 2))
    noise = _squared_error(recon, target)
    if noise <= 0:
        return float("inf")
    return 10.0 * math.log10(max(signal, 1e-300) / noise)


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
    """Most scales (<= 5) for which the 11-tap window still fits the coarsest level."""
    short = min(height, width)
    for scales in range(5, 0, -1):
        if short > 10 * 2 ** (scales - 1):
            return scales
    return 1


def ms_ssim_nchw(x: torch.Tensor, y: torch.Tensor, scales: int | None = None) -> torch.Tensor:
    """MS-SSIM per image of (N, C, H, W) batches in [0, 1] (Wang et al. 2003).

    pytorch-msssim's own ms_ssim insists on 5 scales (short side > 160); this runs its
    per-scale SSIM/contrast terms over as many scales as the frame allows, with the standard
    weights renormalised. With 5 scales it equals pytorch-msssim's result (tested).
    """
    scales = scales or msssim_scales(*x.shape[-2:])
    weights = torch.tensor(MSSSIM_WEIGHTS[:scales], dtype=torch.float32, device=x.device)
    weights = weights / weights.sum()
    win = _fspecial_gauss_1d(11, 1.5).repeat([x.shape[1], 1, 1, 1]).to(x.device)
    mcs = []
    for i in range(scales):
        ssim_pc, cs = _ssim_cs(x, y, data_range=1.0, win=win, size_average=False)
        if i < scales - 1:
            mcs.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
    stack = torch.stack(mcs + [torch.relu(ssim_pc)], dim=0)
    return torch.prod(stack ** weights.view(-1, 1, 1), dim=0).mean(1)


def ms_ssim_frames(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Per-frame MS-SSIM of channels-last (N, H, W, C) batches, a few frames at a time."""
    out: list[float] = []
    for run in frame_chunks(a.shape[0], a[0].numel()):
        a4, b4 = _nchw(a[run]).clamp(0, 1), _nchw(b[run]).clamp(0, 1)
        if min(a4.shape[-2:]) < 11:
            out += [float(v) for v in _ssim(a4, b4, data_range=1.0, size_average=False, win_size=3)]
        else:
            out += [float(v) for v in ms_ssim_nchw(a4, b4)]
    return out


def per_frame_psnr(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return [mse_to_psnr(_squared_error(a[i], b[i]) / max(1, a[i].numel())) for i in range(a.shape[0])]
