"""Reading and writing images and videos as uint8 tensors (T, H, W, 3).

Videos are decoded by ffmpeg (through ffmpeg-python) into raw RGB on a pipe; crop/resize
and the frame range are applied by ffmpeg's filters so only the frames we keep are ever in
memory. Inputs are probed first and refused, with the memory they would need, if they
would not fit. All writers go to a temporary name in the same folder and rename at the end.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import ffmpeg
import imageio.v3 as iio
import numpy as np
import torch

from inr.errors import InrError
from video.ffmpeg_bin import ffmpeg_exe

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}  # every image reader and the server's uploads
LOSSLESS_IMAGE_EXTS = {".png", ".bmp", ".tif", ".tiff", ".webp"}  # what a decoded image may be written as
VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".y4m", ".m4v", ".mpg", ".mpeg", ".ts"}
DEFAULT_MEMORY_LIMIT = 4 << 30  # bytes of uint8 frames we are willing to hold
# Demuxers whose input seeking (`-ss` before `-i`) lands on exactly the frame asked for, checked
# frame by frame on a 30000/1001 H.264 clip with B-frames (tests/test_gop.py). Not MPEG-TS (it
# seeks by byte position and can land past the keyframe the frame needs) nor AVI (it stores
# decode times: with B-frames a seek returned no frames at all); those decode from the start.
SEEKABLE_DEMUXERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "yuv4mpegpipe"})


# ------------------------------------------------------------------ atomic writes
@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs should look normal
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without setting it where the OS allows (Linux): flipping it,
    even for an instant, would give files another thread creates meanwhile the wrong mode."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: a brief flip to a safe value, then restored
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ geometry options
def parse_size(text: str | None, what: str) -> tuple[int, int] | None:
    """'320x180' -> (320, 180) as (width, height)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX:]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise InrError(f"--{what} expects WIDTHxHEIGHT (e.g. 320x180), got '{text}'")
    return int(m.group(1)), int(m.group(2))


@dataclass
class MediaInfo:
    path: str
    kind: str  # "image" | "video" | "frames"
    width: int
    height: int
    frames: int
    fps: float
    codec: str = ""
    files: list[str] = field(default_factory=list)  # for a folder of frames
    duration: float = 0.0  # seconds, from the container (0: unknown)
    demuxer: str = ""  # ffmpeg's input format name, e.g. 'mov,mp4,m4a,3gp,3g2,mj2'
    # Frame n is at origin + n / rate seconds and the container seeks to the frame (`seek_time`);
    # rate None: readers reach a start frame by decoding from the first (exact=False probes too).
    rate: Fraction | None = None
    origin: Fraction = Fraction(0)


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def media_kind(path: Path) -> str:
    """"image" or "video" by the file name alone (no probe): what a job's defaults depend on."""
    return "image" if is_image_path(path) else "video"


# ------------------------------------------------------------------ images
def load_image(path: Path | str) -> torch.Tensor:
    """(H, W, 3) uint8. Alpha is dropped, grey is expanded."""
    path = Path(path)
    if not path.is_file():
        raise InrError(f"{path}: no such file")
    try:
        arr = iio.imread(path)
    except Exception as exc:  # imageio raises many types for non-images
        raise InrError(f"{path}: not a readable image ({type(exc).__name__})") from None
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise InrError(f"{path}: unsupported image layout {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) / np.iinfo(arr.dtype).max * 255).round().astype(np.uint8) if arr.dtype.kind == "u" else arr.clip(0, 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(arr))


def to_uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float in [0, 1] -> uint8 with rounding (not truncation); uint8 passes through."""
    if isinstance(x, np.ndarray):
        return x if x.dtype == np.uint8 else (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    if x.dtype == torch.uint8:
        return x.cpu().numpy()
    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def save_image(path: Path | str, pixels: torch.Tensor) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, to_uint8(pixels), extension=path.suffix or ".png")
    return path


# ------------------------------------------------------------------ video probing
def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def probe(path: Path | str, exact: bool = True, timeout: float | None = None) -> MediaInfo:
    """Size, frame count and fps of a video file, an image or a folder of frames.

    exact=True counts video frames by decoding them (container counts are often missing or
    wrong, and readers must not drop frames). exact=False reads only the container's
    metadata (duration x frame rate; images: the header) and decodes only when the
    container has no duration: what a server needs to check an upload quickly. `timeout`
    bounds every ffmpeg call (seconds); past it the file is refused with an InrError.
    """
    path = Path(path)
    if path.is_dir():
        files = _frame_files(path)
        if not files:
            raise InrError(f"{path}: folder has no PNG/JPEG frames")
        first = load_image(files[0])
        return MediaInfo(str(path), "frames", first.shape[1], first.shape[0], len(files), 25.0, "png", [str(f) for f in files])
    if not path.exists():
        raise InrError(f"{path}: no such file")
    if is_image_path(path):
        width, height = _image_size(path) if not exact else load_image(path).shape[1::-1]
        return MediaInfo(str(path), "image", width, height, 1, 0.0, path.suffix.lstrip("."))
    # ffprobe is not shipped with imageio-ffmpeg; `ffmpeg -i` prints the same stream line.
    err = _ffmpeg_stderr(["-i", str(path)], path, timeout)
    info = parse_stream_info(err, path)
    if exact or info.frames <= 0:
        info.frames, rate, origin = _scan_frames(path, timeout)
        if info.demuxer in SEEKABLE_DEMUXERS:
            info.rate, info.origin = rate, origin
    if info.frames == 0:
        raise InrError(f"{path}: video has zero decodable frames")
    return info


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception as exc:  # PIL raises many types for non-images
        raise InrError(f"{path}: not a readable image ({type(exc).__name__})") from None


def parse_rate(text: str) -> float:
    """ffmpeg's short rate notation: '25', '29.97', '1k' (1000), '1.2M'."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKM]?)\s*", text)
    if not m:
        raise ValueError(f"not a rate: {text!r}")
    return float(m.group(1)) * {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}[m.group(2)]


def parse_stream_info(err: str, path: Path) -> MediaInfo:
    """MediaInfo from `ffmpeg -i` output; frames = duration x fps (0 when the container has no
    duration). Rates such as '1k fps' are read as 1000, not dropped."""
    m = re.search(r"Stream #\d+:\d+(?:\[\w+\])?(?:\(\w+\))?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})", err)
    if not m:
        first = err.strip().splitlines()[-1] if err.strip() else "no video stream"
        raise InrError(f"{path}: not a readable video ({first})")
    codec, width, height = m.group(1), int(m.group(2)), int(m.group(3))
    stream_line = err[m.start():].splitlines()[0]
    fps = 25.0
    for unit in ("fps", "tbr"):
        rate = re.search(rf"(\d+(?:\.\d+)?[kKM]?) {unit}\b", stream_line)
        if rate:
            fps = parse_rate(rate.group(1))
            break
    dur = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", err)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    frames = int(round(duration * fps)) if duration > 0 and fps > 0 else 0
    demuxer = re.search(r"Input #0, (.+?), from ", err)
    return MediaInfo(str(path), "video", width, height, frames, fps, codec, duration=duration, demuxer=demuxer.group(1) if demuxer else "")


def _ffmpeg_stderr(args: list[str], path: Path, timeout: float | None) -> str:
    """Run ffmpeg and return its stderr; a run past `timeout` is killed and refused."""
    try:
        proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True, text=True, errors="replace", check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InrError(f"{path}: ffmpeg could not read it within {timeout:g} s") from None
    return proc.stderr


def _scan_frames(path: Path, timeout: float | None = None) -> tuple[int, Fraction | None, Fraction]:
    """(frames, rate, origin) by decoding to null: the exact count (container frame counts are
    often missing or wrong) and, from every frame's timestamp (showinfo, no checksums), the
    exact frame rate and first frame's time when frame n is at origin + n / rate to within an
    eighth of a frame (rate None otherwise: variable frame rate, broken timestamps)."""
    err = _ffmpeg_stderr(["-i", str(path), "-map", "0:v:0", "-vf", "showinfo=checksum=0", "-f", "null", "-"], path, timeout)
    counts = re.findall(r"frame=\s*(\d+)", err)
    frames = int(counts[-1]) if counts else 0
    config = re.search(r"config in time_base: (\d+)/(\d+), frame_rate: (\d+)/(\d+)", err)
    pts = [int(p) for p in re.findall(r"\bn:\s*\d+ pts:\s*(-?\d+) ", err)]
    if not config or len(pts) != frames or not frames or 0 in (int(config.group(2)), int(config.group(3)), int(config.group(4))):
        return frames, None, Fraction(0)
    tb, rate = Fraction(int(config.group(1)), int(config.group(2))), Fraction(int(config.group(3)), int(config.group(4)))
    origin = pts[0] * tb
    if origin < 0 or any(abs(p * tb - origin - n / rate) >= 1 / (8 * rate) for n, p in enumerate(pts)):
        return frames, None, origin
    return frames, rate, origin


def seek_time(info: MediaInfo | None, frame: int) -> float | None:
    """Seconds to give ffmpeg's input seek (`-ss` before `-i`) so decoding starts at exactly
    `frame`: a quarter frame before its timestamp, so that neither timestamp rounding in the
    container (mkv keeps milliseconds) nor the seek's own rounding to the stream's time base
    lets the previous frame in or this one out. None where seeking is not frame-exact (see
    `MediaInfo.rate`): the reader then decodes from the start and drops frames before `frame`."""
    if info is None or info.rate is None or frame <= 0:
        return None
    return float(info.origin + (frame - Fraction(1, 4)) / info.rate)


# ------------------------------------------------------------------ reading
@dataclass
class ReadOptions:
    max_frames: int | None = None
    start: int = 0
    resize: tuple[int, int] | None = None  # (width, height), applied before crop
    crop: tuple[int, int] | None = None  # (width, height), centred
    memory_limit: int = DEFAULT_MEMORY_LIMIT


def output_geometry(info: MediaInfo, opts: ReadOptions) -> tuple[int, int, int]:
    """(frames, height, width) after frame range, resize and crop; validates the request."""
    w, h = opts.resize or (info.width, info.height)
    if opts.crop:
        cw, ch = opts.crop
        if cw > w or ch > h:
            raise InrError(f"--crop {cw}x{ch} is larger than the frame {w}x{h}")
        w, h = cw, ch
    if opts.start >= info.frames:
        raise InrError(f"start frame {opts.start} is past the end ({info.frames} frames)")
    t = info.frames - opts.start
    if opts.max_frames is not None:
        if opts.max_frames < 1:
            raise InrError("--max-frames must be positive")
        t = min(t, opts.max_frames)
    need = t * h * w * 3
    # float32 copies for training need 4x more again; the check is on what we hold in uint8.
    if need > opts.memory_limit:
        raise InrError(
            f"{info.path}: {t} frames of {w}x{h} need {need / 2**30:.1f} GiB (limit {opts.memory_limit / 2**30:.1f} GiB); "
            "use --max-frames or --resize"
        )
    return t, h, w


def read_media(path: Path | str, opts: ReadOptions | None = None) -> tuple[torch.Tensor, MediaInfo]:
    """The one reader of pictures: a video, a folder of frames or an image, decoded to
    (T, H, W, 3) uint8 (T = 1 for an image) with the requested range, resize and centre crop."""
    opts = opts or ReadOptions()
    info = probe(path)
    t, h, w = output_geometry(info, opts)
    if info.kind == "image":
        frames = load_image(path)[None]
        return apply_geometry(frames, opts), info
    if info.kind == "frames":
        files = info.files[opts.start : opts.start + t]
        frames = torch.stack([load_image(f) for f in files])
        if len({tuple(f.shape) for f in frames}) > 1:
            raise InrError(f"{path}: frames differ in size")
        return apply_geometry(frames, opts), info
    out = decode_graph(path, opts, t, info)
    try:
        raw, _ = ffmpeg.run(out, cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True, quiet=True)
    except ffmpeg.Error as exc:
        last = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise InrError(f"{path}: ffmpeg could not decode it ({last[-1] if last else 'unknown error'})") from None
    n = len(raw) // (h * w * 3)
    if n == 0:
        raise InrError(f"{path}: no frames decoded")
    arr = np.frombuffer(raw[: n * h * w * 3], dtype=np.uint8).reshape(n, h, w, 3)
    info.frames = n
    return torch.from_numpy(arr.copy()), info


def decode_graph(path: Path | str, opts: ReadOptions, frames: int, info: MediaInfo | None = None):
    """The ffmpeg graph that decodes `frames` frames of `path` to raw RGB on stdout, with the
    requested start, resize and centre crop (shared by the whole-clip and chunked readers).
    A start frame is reached by input seeking where `info` says that is frame-exact
    (`seek_time`), so a GOP late in a long clip costs its own frames, not all before it;
    otherwise every frame before it is decoded and dropped."""
    seek = seek_time(info, opts.start)
    v = ffmpeg.input(str(path), **({"ss": f"{seek:.6f}"} if seek is not None else {})).video
    if opts.start and seek is None:
        v = v.filter("select", f"gte(n,{opts.start})").filter("setpts", "N/FRAME_RATE/TB")
    if opts.resize:
        v = v.filter("scale", opts.resize[0], opts.resize[1], flags="bicubic")
    if opts.crop:
        v = v.filter("crop", opts.crop[0], opts.crop[1])  # centred by default
    return ffmpeg.output(v, "pipe:", format="rawvideo", pix_fmt="rgb24", vframes=frames, **{"fps_mode": "passthrough"})


def apply_geometry(frames: torch.Tensor, opts: ReadOptions) -> torch.Tensor:
    if opts.resize:
        x = frames.permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(x, size=(opts.resize[1], opts.resize[0]), mode="bicubic", align_corners=False)
        frames = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    if opts.crop:
        cw, ch = opts.crop
        h, w = frames.shape[1:3]
        top, left = (h - ch) // 2, (w - cw) // 2
        frames = frames[:, top : top + ch, left : left + cw]
    return frames.contiguous()


# ------------------------------------------------------------------ writing
def write_video(path: Path | str, frames: torch.Tensor, fps: float = 25.0, lossless: bool = False, crf: int = 18) -> Path:
    """(T, H, W, 3) uint8/float -> mp4/mkv (H.264; lossless = RGB x264 -qp 0) or a PNG folder
    (path ending in '/' or an existing directory)."""
    path = Path(path)
    arr = to_uint8(frames)
    if str(path).endswith(os.sep) or path.is_dir() or path.suffix == "":
        return write_frames_dir(path, arr)
    arr = pad_even(arr) if not lossless else arr
    t, h, w, _ = arr.shape
    codec = codec_args(lossless, crf)
    with atomic_path(path) as tmp:
        proc = (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps or 25.0)
            .output(str(tmp), **codec)
            .overwrite_output()
            .run_async(cmd=ffmpeg_exe(), pipe_stdin=True, pipe_stderr=True, quiet=True)
        )
        _, err = proc.communicate(input=np.ascontiguousarray(arr).tobytes())
        if proc.returncode != 0:
            raise InrError(f"ffmpeg could not write {path}: {err.decode(errors='replace').strip().splitlines()[-1:]}")
    return path


def pad_even(arr: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes: pad (T, H, W, 3) frames by one edge row/column where odd."""
    h, w = arr.shape[1:3]
    return np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else arr


def codec_args(lossless: bool, crf: int) -> dict:
    """ffmpeg output options: lossless RGB x264 -qp 0, or yuv420p H.264 at `crf` for playback."""
    if lossless:
        return {"vcodec": "libx264rgb", "qp": 0, "pix_fmt": "rgb24", "preset": "veryfast"}
    return {"vcodec": "libx264", "crf": crf, "pix_fmt": "yuv420p", "preset": "medium", "movflags": "+faststart"}


def write_frames_dir(folder: Path, frames: np.ndarray) -> Path:
    folder = Path(folder)
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=parent))
    try:
        for i, f in enumerate(frames):
            iio.imwrite(tmp / f"frame_{i:05d}.png", f)
        replace_frames_dir(tmp, folder)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def replace_frames_dir(tmp: Path, folder: Path) -> None:
    """Move the finished frames in `tmp` to `folder` (replacing its old frames), then drop `tmp`."""
    if folder.exists():
        for old in folder.glob("frame_*.png"):
            old.unlink()
        for f in sorted(tmp.iterdir()):
            os.replace(f, folder / f.name)
        tmp.rmdir()
    else:
        os.replace(tmp, folder)
