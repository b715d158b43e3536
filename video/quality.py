"""Quality of a decoded clip against its original, the same code for INRs and codecs.

RGB PSNR and MS-SSIM come from `inr.metrics`. Y-PSNR is measured on YUV 4:2:0 planes that
ffmpeg itself produces from both clips (default swscale BT.601 conversion), so it is the
number ffmpeg's `psnr` filter reports for the same pair; tests check that to 0.05 dB.
Clip-level values are means of per-frame values (the NeRV/HNeRV papers' convention).
"""
from __future__ import annotations

import numpy as np
import torch

from inr.metrics import ms_ssim_frames, per_frame_psnr
from video.ffmpeg_bin import ffmpeg_exe


def to_yuv420p(frames: np.ndarray, fps: float = 25.0) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> (T, H*3/2 * W) raw yuv420p bytes per frame, as ffmpeg converts."""
    import subprocess

    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError("yuv420p needs even frame sizes")
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
         "-r", str(fps), "-i", "pipe:", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:"],
        input=np.ascontiguousarray(frames).tobytes(), capture_output=True, check=True,
    )
    return np.frombuffer(proc.stdout, dtype=np.uint8).reshape(t, -1)


def y_planes(yuv: np.ndarray, height: int, width: int) -> np.ndarray:
    return yuv[:, : height * width].reshape(-1, height, width)


def psnr_8bit(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Per-frame PSNR of uint8 arrays (first axis = frames), peak 255."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(a.shape[0], -1).mean(1)
    return [float("inf") if m == 0 else 10 * np.log10(255.0**2 / m) for m in mse]


def even_crop(frames: np.ndarray) -> np.ndarray:
    t, h, w, _ = frames.shape
    return frames[:, : h - h % 2, : w - w % 2]


def clip_quality(decoded: np.ndarray, original: np.ndarray, decoded_y: np.ndarray | None = None) -> dict:
    """Metrics of uint8 (T, H, W, 3) clips. `decoded_y`: the codec's own decoded Y planes (for
    yuv420p codecs, so Y-PSNR skips a needless RGB round trip)."""
    a = torch.tensor(decoded, dtype=torch.float32) / 255  # copies: inputs may be read-only buffers
    b = torch.tensor(original, dtype=torch.float32) / 255
    frames = per_frame_psnr(a, b)
    ms = ms_ssim_frames(a, b)
    oe = even_crop(original)
    h, w = oe.shape[1:3]
    y_ref = y_planes(to_yuv420p(oe), h, w)
    y_dec = decoded_y if decoded_y is not None else y_planes(to_yuv420p(even_crop(decoded)), h, w)
    y = psnr_8bit(y_dec, y_ref)
    return {
        "psnr": float(np.mean(frames)),
        "psnr_y": float(np.mean(y)),
        "msssim": float(np.mean(ms)),
        "per_frame_psnr": frames,
        "per_frame_psnr_y": y,
    }
