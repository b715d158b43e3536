"""Reading and writing audio through ffmpeg, as float samples (N, C) in [-1, 1].

Audio files are recognised by their extension (as images are), then probed with `ffmpeg -i`
so that a file that is not audio is refused with one line before any decoding. Every stream
ffmpeg decodes is accepted (wav, flac, mp3, ogg, ...): the first audio stream is decoded to
32-bit float PCM on a pipe at its own sample rate and channel count, which the signal keeps
so the reconstruction is written back at the rate it was read. Writers go to a temporary
name beside the target and rename at the end (video.media.atomic_path).
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inr.errors import InrError
from video.ffmpeg_bin import ffmpeg_exe
from video.media import DEFAULT_MEMORY_LIMIT, atomic_path

AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma"}
MAX_CHANNELS = 16  # what an .inr header accepts (inr.export.schema LIMITS["channels"])
# ffmpeg's names for common channel layouts; other layouts print as "N channels".
_LAYOUTS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


@dataclass
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    codec: str
    duration: float  # seconds, from the container (0: unknown)


def is_audio_path(path: Path | str) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTS


def parse_audio_stream(err: str, path: Path | str) -> AudioInfo:
    """AudioInfo from `ffmpeg -i` output: the first audio stream's codec, rate and channels."""
    m = re.search(r"Stream #\d+:\d+(?:\[\w+\])?(?:\(\w+\))?: Audio: (\w+)[^\n]*?, (\d+) Hz, ([^,\n]+)", err)
    if not m:
        last = err.strip().splitlines()[-1] if err.strip() else "no audio stream"
        raise InrError(f"{path}: not a readable audio file ({last})")
    layout = m.group(3).strip()
    counted = re.fullmatch(r"(\d+) channels", layout)
    channels = int(counted.group(1)) if counted else _LAYOUTS.get(layout.split("(")[0], 0)
    if channels < 1:
        raise InrError(f"{path}: unsupported channel layout '{layout}'")
    dur = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", err)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    return AudioInfo(str(path), int(m.group(2)), channels, m.group(1), duration)


def _run_ffmpeg(args: list[str], timeout: float | None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args],
            input=stdin, capture_output=True, check=False, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise InrError(f"ffmpeg did not finish within {timeout:g} s") from None


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "unknown error"


def probe_audio(path: Path | str, timeout: float | None = 30.0) -> AudioInfo:
    """Sample rate, channels, codec and duration of an audio file, from its header."""
    path = Path(path)
    if not path.is_file():
        raise InrError(f"{path}: no such file")
    proc = _run_ffmpeg(["-i", str(path)], timeout)
    info = parse_audio_stream(proc.stderr.decode(errors="replace"), path)
    if info.channels > MAX_CHANNELS:
        raise InrError(f"{path}: {info.channels} channels (at most {MAX_CHANNELS})")
    return info


def read_audio(path: Path | str, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> tuple[torch.Tensor, AudioInfo]:
    """Decode the first audio stream to (N, C) float32 in [-1, 1] at its own rate."""
    info = probe_audio(path)
    need = info.duration * info.sample_rate * info.channels * 4
    if need > memory_limit:
        raise InrError(f"{path}: {info.duration:.0f} s of audio need {need / 2**30:.1f} GiB as float (limit {memory_limit / 2**30:.1f} GiB)")
    args = ["-i", str(path), "-map", "0:a:0", "-vn", "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(info.channels), "-ar", str(info.sample_rate), "pipe:1"]
    proc = _run_ffmpeg(args, None)
    if proc.returncode != 0:
        raise InrError(f"{path}: ffmpeg could not decode it ({_last_line(proc.stderr)})")
    n = len(proc.stdout) // (4 * info.channels)
    if n == 0:
        raise InrError(f"{path}: no audio samples decoded")
    arr = np.frombuffer(proc.stdout[: n * 4 * info.channels], dtype="<f4").reshape(n, info.channels)
    return torch.from_numpy(np.clip(arr, -1.0, 1.0).copy()), info


def write_audio(path: Path | str, samples: torch.Tensor, sample_rate: int) -> Path:
    """(N, C) float in [-1, 1] -> an audio file; .wav is 16-bit PCM, other extensions get
    ffmpeg's default codec for that container."""
    path = Path(path)
    if samples.ndim != 2 or samples.shape[1] < 1:
        raise InrError(f"audio must be (samples, channels), got shape {tuple(samples.shape)}")
    arr = samples.detach().float().clamp(-1, 1).cpu().numpy().astype("<f4")
    channels = arr.shape[1]
    codec = ["-acodec", "pcm_s16le"] if path.suffix.lower() == ".wav" else []
    with atomic_path(path) as tmp:
        args = ["-f", "f32le", "-ar", str(int(sample_rate)), "-ac", str(channels), "-i", "pipe:0", *codec, str(tmp)]
        proc = _run_ffmpeg(args, None, stdin=np.ascontiguousarray(arr).tobytes())
        if proc.returncode != 0:
            raise InrError(f"ffmpeg could not write {path}: {_last_line(proc.stderr)}")
    return path
