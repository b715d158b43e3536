"""Chunked video I/O: frames in from ffmpeg a group at a time, frames out to ffmpeg as they are
produced, so memory follows the chunk, never the clip's length.

`read_chunks` yields uint8 (n, H, W, 3) tensors of the requested sizes from one ffmpeg
process (or a folder of frames); `FrameSink` encodes frames written to it in any number of
calls to an mp4/mkv or a PNG folder, under a temporary name renamed only when complete.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import ffmpeg
import imageio.v3 as iio
import numpy as np
import torch

from inr.errors import InrError
from video.ffmpeg_bin import ffmpeg_exe
from video.media import (
    MediaInfo,
    ReadOptions,
    apply_geometry,
    atomic_path,
    codec_args,
    decode_graph,
    load_image,
    output_geometry,
    pad_even,
    probe,
    replace_frames_dir,
    to_uint8,
)

UNBOUNDED = 1 << 62  # memory limit that turns output_geometry's whole-clip check off


def geometry(path: Path | str, read: ReadOptions) -> tuple[MediaInfo, int, int, int]:
    """(info, frames, height, width) to be read, without the whole-clip memory check: a
    chunked reader holds one chunk, and the caller's admission check sizes the chunks."""
    info = probe(path)
    t, h, w = output_geometry(info, dataclasses.replace(read, memory_limit=UNBOUNDED))
    return info, t, h, w


def read_chunks(path: Path | str, read: ReadOptions, sizes: Iterable[int], probed: MediaInfo | None = None) -> Iterator[torch.Tensor]:
    """Consecutive chunks of `sizes` frames each (uint8, (n, H, W, 3)) from `read.start` on;
    stops early if the source ends. One ffmpeg process streams the whole range, starting at
    `read.start` by input seeking where the container allows it frame-exactly (mp4/mov, mkv/webm,
    y4m with evenly spaced frames: `video.media.seek_time`), else by decoding from the
    first frame; a frame folder opens only the files asked for. `probed`: the source's
    `probe()` when the caller has it (probing counts frames by decoding them all)."""
    if probed is None:
        info, t, h, w = geometry(path, read)
    else:
        info = probed
        t, h, w = output_geometry(info, dataclasses.replace(read, memory_limit=UNBOUNDED))
    sizes = list(sizes)
    if info.kind == "image":
        raise InrError(f"{path}: an image has no frames to read in chunks")
    if info.kind == "frames":
        yield from _folder_chunks(info, read, sizes)
        return
    frame_bytes = h * w * 3
    cmd = decode_graph(path, read, min(t, sum(sizes)), info).compile(cmd=ffmpeg_exe())
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        try:
            for n in sizes:
                raw = _read_exact(proc.stdout, n * frame_bytes)
                got = len(raw) // frame_bytes
                if got:
                    arr = np.frombuffer(raw[: got * frame_bytes], dtype=np.uint8).reshape(got, h, w, 3)
                    yield torch.from_numpy(arr.copy())
                if got < n:
                    break
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _read_exact(pipe, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        block = pipe.read(left)
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


def _folder_chunks(info: MediaInfo, read: ReadOptions, sizes: list[int]) -> Iterator[torch.Tensor]:
    files, pos = info.files[read.start :], 0
    for n in sizes:
        names = files[pos : pos + n]
        if not names:
            return
        frames = [load_image(f) for f in names]
        if len({tuple(f.shape) for f in frames}) > 1:
            raise InrError(f"{info.path}: frames differ in size")
        yield apply_geometry(torch.stack(frames), read)
        pos += n


class FrameSink:
    """Write frames as they come: an mp4/mkv through one ffmpeg process, or a PNG folder (a
    path ending in '/' or without a suffix). The output appears only on a clean `close`."""

    def __init__(self, path: Path | str, width: int, height: int, fps: float = 25.0, lossless: bool = False, crf: int = 18):
        self.path = Path(path)
        self.count = 0
        self.lossless = lossless
        self.folder = str(path).endswith("/") or self.path.is_dir() or self.path.suffix == ""
        if self.folder:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
            return
        self._atomic = atomic_path(self.path)
        self.tmp = self._atomic.__enter__()
        w, h = (width, height) if lossless else (width + width % 2, height + height % 2)
        self._err = tempfile.TemporaryFile()
        cmd = (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps or 25.0)
            .output(str(self.tmp), **codec_args(lossless, crf))
            .overwrite_output()
            .compile(cmd=ffmpeg_exe())
        )
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._err)

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """(n, H, W, 3) frames, uint8 or float in [0, 1]."""
        arr = to_uint8(frames)
        if self.folder:
            for f in arr:
                iio.imwrite(self.tmp / f"frame_{self.count:05d}.png", f)
                self.count += 1
            return
        arr = arr if self.lossless else pad_even(arr)
        try:
            self.proc.stdin.write(np.ascontiguousarray(arr).tobytes())
        except BrokenPipeError:
            raise InrError(f"ffmpeg could not write {self.path}: {self._stderr()}") from None
        self.count += len(arr)

    def _stderr(self) -> str:
        self._err.seek(0)
        lines = self._err.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "unknown error"

    def close(self, ok: bool = True) -> None:
        """Finish (ok) or abandon the output; a failed or abandoned one leaves nothing behind."""
        if self.folder:
            if ok:
                replace_frames_dir(self.tmp, self.path)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
            return
        self.proc.stdin.close()
        rc = self.proc.wait()
        try:
            if ok and rc != 0:
                raise InrError(f"ffmpeg could not write {self.path}: {self._stderr()}")
        except InrError as exc:
            self._atomic.__exit__(InrError, exc, None)
            raise
        finally:
            self._err.close()
        if ok:
            self._atomic.__exit__(None, None, None)
        else:
            self._atomic.__exit__(InrError, InrError("abandoned"), None)

    def __enter__(self) -> "FrameSink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)
