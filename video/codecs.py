"""H.264 / H.265 baselines through ffmpeg (libx264 / libx265), on the exact frames an INR saw.

Frames go in as raw RGB, are converted to yuv420p by ffmpeg and encoded with a CRF; the
encoder writes a raw Annex-B elementary stream (`-f h264` / `-f hevc`), so the size we
report is the coded video stream alone: no container, no audio, no index, and no SEI
(the encoders' version/option strings, which decoders ignore, are stripped before counting). Odd frame sizes
are padded by one edge row/column for 4:2:0 and cropped back after decoding.
"""
from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inr.errors import InrError
from video.ffmpeg_bin import ffmpeg_exe, require_encoder

CODECS = {"h264": ("libx264", "h264"), "h265": ("libx265", "hevc")}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


@dataclass
class BaselineResult:
    codec: str
    preset: str
    crf: int
    bytes: int
    decoded: np.ndarray  # (T, H, W, 3) uint8 RGB
    decoded_y: np.ndarray | None  # (T, H, W) uint8 Y planes as decoded (even sizes only)
    encode_seconds: float
    decode_seconds: float


_SEI_TYPES = {"h264": (6,), "h265": (39, 40)}  # SEI NAL unit types (HEVC: prefix and suffix)


def strip_sei(stream: bytes, codec: str = "h265") -> bytes:
    """Drop SEI NAL units from an Annex-B H.264 / HEVC stream.

    x265 (x264) writes its version and full option string as an SEI message, about 2.3 KB
    (0.7 KB): more than a small still needs for its pixels. Decoders ignore it, so a codec
    that kept it would be charged for a log line. Emulation prevention guarantees that
    00 00 01 occurs only at unit starts, so splitting there is exact.
    """
    drop = _SEI_TYPES[codec]
    starts, i = [], stream.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i)
        i = stream.find(b"\x00\x00\x01", i + 3)
    keep = [stream[: starts[0]]] if starts else [stream]
    for a, b in zip(starts, starts[1:] + [len(stream)]):
        unit = stream[a:b]
        kind = unit[3] & 0x1F if codec == "h264" else (unit[3] >> 1) & 0x3F
        if kind not in drop:
            keep.append(unit)
    return b"".join(keep)


def _run(cmd: list[str], data: bytes | None = None) -> bytes:
    proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["unknown error"]
        raise InrError(f"ffmpeg failed: {tail[0]}")
    return proc.stdout


def encode_baseline(
    frames: np.ndarray, codec: str, preset: str, crf: int, fps: float = 25.0, keep_stream: Path | None = None
) -> BaselineResult:
    """Encode and decode back; `keep_stream` saves the elementary stream (for inspection or cross-checks)."""
    if codec not in CODECS:
        raise InrError(f"unknown codec '{codec}' (choose from {', '.join(CODECS)})")
    if preset not in PRESETS:
        raise InrError(f"unknown preset '{preset}'")
    lib, fmt = CODECS[codec]
    require_encoder(lib)
    t, h, w, _ = frames.shape
    ph, pw = h + h % 2, w + w % 2
    src = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge") if (ph, pw) != (h, w) else frames
    exe = ffmpeg_exe()
    quiet = ["-x265-params", "log-level=error"] if codec == "h265" else []
    with tempfile.TemporaryDirectory(prefix="inr-baseline-") as tmp:
        stream = Path(tmp) / f"out.{fmt}"
        t0 = time.perf_counter()
        _run(
            [exe, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{pw}x{ph}", "-r", str(fps),
             "-i", "pipe:", "-c:v", lib, "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p", *quiet, "-f", fmt, str(stream)],
            np.ascontiguousarray(src).tobytes(),
        )
        encode_seconds = time.perf_counter() - t0
        stream.write_bytes(strip_sei(stream.read_bytes(), codec))  # charge pictures, not the encoder's log
        size = stream.stat().st_size
        if keep_stream is not None:
            import shutil

            shutil.copyfile(stream, keep_stream)
        t0 = time.perf_counter()
        rgb = _run([exe, "-hide_banner", "-loglevel", "error", "-i", str(stream), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"])
        decode_seconds = time.perf_counter() - t0
        yuv = _run([exe, "-hide_banner", "-loglevel", "error", "-i", str(stream), "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:"])
    decoded = np.frombuffer(rgb, dtype=np.uint8).reshape(-1, ph, pw, 3)[:, :h, :w]
    if decoded.shape[0] != t:
        raise InrError(f"{codec} decoded {decoded.shape[0]} frames, expected {t}")
    y = None
    if (ph, pw) == (h, w):
        y = np.frombuffer(yuv, dtype=np.uint8).reshape(t, -1)[:, : h * w].reshape(t, h, w)
    return BaselineResult(codec, preset, crf, size, np.ascontiguousarray(decoded), y, encode_seconds, decode_seconds)
