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
from typing import Iterable, Iterator

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


def _check(codec: str, preset: str) -> tuple[str, str]:
    if codec not in CODECS:
        raise InrError(f"unknown codec '{codec}' (choose from {', '.join(CODECS)})")
    if preset not in PRESETS:
        raise InrError(f"unknown preset '{preset}'")
    lib, fmt = CODECS[codec]
    require_encoder(lib)
    return lib, fmt


def _padded(frames: np.ndarray) -> np.ndarray:
    """Odd sides padded by one edge row/column for 4:2:0."""
    h, w = frames.shape[1:3]
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else frames


def encode_stream(chunks: Iterable[np.ndarray], size: tuple[int, int], codec: str, preset: str, crf: int, stream: Path, fps: float = 25.0) -> tuple[int, float]:
    """Encode (n, H, W, 3) uint8 chunks of one clip of `size` (height, width) to the elementary
    stream `stream`, fed to ffmpeg as they come; returns (bytes without SEI, encode seconds)."""
    lib, fmt = _check(codec, preset)
    h, w = size
    quiet = ["-x265-params", "log-level=error"] if codec == "h265" else []
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w + w % 2}x{h + h % 2}", "-r", str(fps),
           "-i", "pipe:", "-c:v", lib, "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p", *quiet, "-f", fmt, "-y", str(stream)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            for chunk in chunks:
                proc.stdin.write(np.ascontiguousarray(_padded(chunk)).tobytes())
        except BrokenPipeError:
            pass  # ffmpeg stopped: its error is read below
        finally:
            proc.stdin.close()
            rc = proc.wait()
        if rc != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or ["unknown error"]
            raise InrError(f"ffmpeg failed: {tail[0]}")
    encode_seconds = time.perf_counter() - t0
    stream.write_bytes(strip_sei(stream.read_bytes(), codec))  # charge pictures, not the encoder's log
    return stream.stat().st_size, encode_seconds


def decode_seconds(stream: Path) -> float:
    """Seconds ffmpeg takes to decode `stream` to RGB (what a player does), output discarded."""
    t0 = time.perf_counter()
    _run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(stream), "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", "/dev/null"])
    return time.perf_counter() - t0


def decoded_chunks(stream: Path, size: tuple[int, int], chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(RGB (n, H, W, 3), Y planes (n, H, W) or None for odd sizes) of `stream`, `chunk` frames
    at a time, cropped back to `size` (height, width): two ffmpeg decoders read in step."""
    h, w = size
    ph, pw = h + h % 2, w + w % 2
    exe = ffmpeg_exe()
    base = [exe, "-hide_banner", "-loglevel", "error", "-i", str(stream), "-f", "rawvideo"]
    with tempfile.TemporaryFile() as err:
        rgb = subprocess.Popen([*base, "-pix_fmt", "rgb24", "pipe:"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        yuv = subprocess.Popen([*base, "-pix_fmt", "yuv420p", "pipe:"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            while True:
                raw = rgb.stdout.read(chunk * ph * pw * 3)
                n = len(raw) // (ph * pw * 3)
                if not n:
                    break
                planes = yuv.stdout.read(n * ph * pw * 3 // 2)
                frames = np.frombuffer(raw[: n * ph * pw * 3], dtype=np.uint8).reshape(n, ph, pw, 3)[:, :h, :w]
                y = None
                if (ph, pw) == (h, w) and len(planes) == n * h * w * 3 // 2:
                    y = np.frombuffer(planes, dtype=np.uint8).reshape(n, -1)[:, : h * w].reshape(n, h, w)
                yield np.ascontiguousarray(frames), y
        finally:
            for proc in (rgb, yuv):
                proc.stdout.close()
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        if rgb.returncode not in (0, -9):
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or ["unknown error"]
            raise InrError(f"ffmpeg failed: {tail[0]}")


def encode_baseline(
    frames: np.ndarray, codec: str, preset: str, crf: int, fps: float = 25.0, keep_stream: Path | None = None
) -> BaselineResult:
    """Encode and decode back a clip held whole; `keep_stream` saves the elementary stream (for
    inspection or cross-checks). A clip too long to hold goes through `encode_stream` and
    `decoded_chunks` (as `inr compare` does)."""
    _, fmt = _check(codec, preset)
    t, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory(prefix="inr-baseline-") as tmp:
        stream = Path(tmp) / f"out.{fmt}"
        size, encode_seconds = encode_stream([frames], (h, w), codec, preset, crf, stream, fps)
        if keep_stream is not None:
            import shutil

            shutil.copyfile(stream, keep_stream)
        seconds = decode_seconds(stream)
        parts = list(decoded_chunks(stream, (h, w), max(t, 1)))
    decoded = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, h, w, 3), np.uint8)
    if decoded.shape[0] != t:
        raise InrError(f"{codec} decoded {decoded.shape[0]} frames, expected {t}")
    y = np.concatenate([p[1] for p in parts]) if parts and all(p[1] is not None for p in parts) else None
    return BaselineResult(codec, preset, crf, size, decoded, y, encode_seconds, seconds)
