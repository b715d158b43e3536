"""Quality of a decoded clip against its original, the same code for INRs and codecs.

RGB PSNR and MS-SSIM come from `inr.metrics`. Y-PSNR is measured on YUV 4:2:0 planes that
ffmpeg itself produces from both clips (default swscale BT.601 conversion), so it is the
number ffmpeg's `psnr` filter reports for the same pair; tests check that to 0.05 dB.
Clip-level values are means of per-frame values (the NeRV/HNeRV papers' convention), so a
clip that arrives in chunks (`stream_quality`) gets the same numbers as one held whole.
"""
from __future__ import annotations

from typing import Iterable

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


def frame_quality(decoded: np.ndarray, original: np.ndarray, decoded_y: np.ndarray | None = None) -> dict:
    """Per-frame metrics of uint8 (T, H, W, 3) clips: lists `per_frame_psnr`,
    `per_frame_psnr_y`, `per_frame_msssim`. `decoded_y`: the codec's own decoded Y planes (for
    yuv420p codecs, so Y-PSNR skips a needless RGB round trip)."""
    a = torch.tensor(decoded, dtype=torch.float32) / 255  # copies: inputs may be read-only buffers
    b = torch.tensor(original, dtype=torch.float32) / 255
    oe = even_crop(original)
    h, w = oe.shape[1:3]
    y_ref = y_planes(to_yuv420p(oe), h, w)
    y_dec = decoded_y if decoded_y is not None else y_planes(to_yuv420p(even_crop(decoded)), h, w)
    return {"per_frame_psnr": per_frame_psnr(a, b), "per_frame_psnr_y": psnr_8bit(y_dec, y_ref), "per_frame_msssim": ms_ssim_frames(a, b)}


def summarize(frames: dict) -> dict:
    """Clip-level means of `frame_quality`'s lists (the per-frame PSNRs are kept)."""
    return {
        "psnr": float(np.mean(frames["per_frame_psnr"])),
        "psnr_y": float(np.mean(frames["per_frame_psnr_y"])),
        "msssim": float(np.mean(frames["per_frame_msssim"])),
        "per_frame_psnr": frames["per_frame_psnr"],
        "per_frame_psnr_y": frames["per_frame_psnr_y"],
    }


def clip_quality(decoded: np.ndarray, original: np.ndarray, decoded_y: np.ndarray | None = None) -> dict:
    """Metrics of uint8 (T, H, W, 3) clips held whole (see `frame_quality`)."""
    return summarize(frame_quality(decoded, original, decoded_y))


def stream_quality(pairs: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> dict:
    """`clip_quality` of a clip that arrives in chunks of (decoded, original, decoded_y or
    None): every metric is per frame, so the lists are joined and averaged once at the end,
    giving the whole clip's numbers while memory holds one chunk."""
    joined: dict[str, list[float]] = {"per_frame_psnr": [], "per_frame_psnr_y": [], "per_frame_msssim": []}
    for decoded, original, decoded_y in pairs:
        for name, values in frame_quality(decoded, original, decoded_y).items():
            joined[name] += values
    if not joined["per_frame_psnr"]:
        raise ValueError("stream_quality needs at least one frame")
    return summarize(joined)
