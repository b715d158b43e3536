"""Still-image baselines: JPEG, WebP and AVIF through Pillow, and x265 intra through ffmpeg.

An INR of a photo is judged against what people actually store photos as, so `inr compare
photo.png` sweeps these codecs' quality settings the way it sweeps x264/x265's CRF for a
video. Sizes are whole files as the encoder writes them (JFIF, RIFF/WebP and ISOBMFF/AVIF
headers included; x265 intra: the raw Annex-B stream, no container), because an `.inr` file
is counted whole too. bpp = bytes * 8 / (H * W).

Settings are each encoder's best-compression knobs that stay fast: JPEG with optimized
Huffman tables and 4:2:0 chroma (libjpeg's default), WebP lossy at method 6 (its slowest,
smallest), AVIF at libavif speed 6 (Pillow's default) with 4:2:0. `quality` is each codec's
own 0..100 scale; for x265 intra it maps linearly onto CRF 51..0 so that every codec grows
in bytes as quality grows, which `match_size` relies on.
"""
from __future__ import annotations

import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features

from inr.errors import InrError

# codec -> (Pillow format or None for ffmpeg, Pillow feature to check, save options, quality range, file suffix)
_PILLOW = {
    "jpeg": ("JPEG", "jpg", {"optimize": True, "subsampling": "4:2:0"}, (1, 100), ".jpg"),
    "webp": ("WEBP", "webp", {"method": 6}, (0, 100), ".webp"),
    "avif": ("AVIF", "avif", {"speed": 6, "subsampling": "4:2:0"}, (0, 100), ".avif"),
}
X265_INTRA = "x265-intra"
X265_PRESET = "medium"
IMAGE_CODECS = (*_PILLOW, X265_INTRA)
DEFAULT_IMAGE_CODECS = ("jpeg", "webp", "avif")
DEFAULT_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
SETTINGS = {  # what the report shows in the "preset" column, so a reader knows how each was run
    "jpeg": "optimize 4:2:0",
    "webp": "method 6",
    "avif": "speed 6 4:2:0",
    X265_INTRA: f"{X265_PRESET} 4:2:0",
}


@dataclass
class ImageCoded:
    """One image coded and decoded back."""

    codec: str
    quality: int
    data: bytes  # the file as written
    decoded: np.ndarray  # (H, W, 3) uint8 RGB
    encode_seconds: float
    decode_seconds: float

    @property
    def bytes(self) -> int:
        return len(self.data)

    def bpp(self) -> float:
        h, w = self.decoded.shape[:2]
        return len(self.data) * 8 / (h * w)


def check_codec(codec: str) -> None:
    """One-line InrError for a codec that is unknown or missing from this Pillow / ffmpeg."""
    if codec not in IMAGE_CODECS:
        raise InrError(f"unknown image codec '{codec}' (choose from {', '.join(IMAGE_CODECS)})")
    if codec == X265_INTRA:
        from video.ffmpeg_bin import require_encoder

        require_encoder("libx265")
        return
    feature = _PILLOW[codec][1]
    if not features.check(feature):
        import PIL

        raise InrError(f"Pillow {PIL.__version__} here was built without {codec.upper()} support; install a Pillow with it or drop '{codec}'")


def quality_range(codec: str) -> tuple[int, int]:
    check_codec(codec)
    return (0, 100) if codec == X265_INTRA else _PILLOW[codec][3]


def suffix(codec: str) -> str:
    return ".hevc" if codec == X265_INTRA else _PILLOW[codec][4]


def x265_crf(quality: int) -> int:
    """quality 0..100 -> CRF 51..0 (x265's range), so bytes grow with quality like the others."""
    return round(51 * (100 - quality) / 100)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise InrError(f"image codecs take (H, W, 3) uint8 RGB, got {rgb.dtype} {tuple(rgb.shape)}")
    return np.ascontiguousarray(rgb)


def _check_quality(codec: str, quality: int) -> int:
    lo, hi = quality_range(codec)
    if not lo <= int(quality) <= hi:
        raise InrError(f"{codec} quality must be in {lo}..{hi}, got {quality}")
    return int(quality)


def encode(rgb: np.ndarray, codec: str, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> the coded file's bytes."""
    rgb = _check_rgb(rgb)
    quality = _check_quality(codec, quality)
    if codec == X265_INTRA:
        from video.codecs import encode_baseline, strip_sei

        with tempfile.TemporaryDirectory(prefix="inr-x265i-") as tmp:
            stream = Path(tmp) / "still.hevc"
            encode_baseline(rgb[None], "h265", X265_PRESET, x265_crf(quality), keep_stream=stream)
            return strip_sei(stream.read_bytes(), "h265")
    fmt, _, options, _, _ = _PILLOW[codec]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, quality=quality, **options)
    return buf.getvalue()


def decode(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """Coded bytes (any codec here; the format is sniffed) -> (H, W, 3) uint8 RGB.

    `size` (H, W) crops an x265 intra stream back to an odd-sized original (4:2:0 streams
    carry one padded edge row/column); Pillow formats know their own size.
    """
    if data[:4] == b"\x00\x00\x00\x01" or data[:3] == b"\x00\x00\x01":  # Annex-B start code: HEVC
        from video.codecs import _run
        from video.ffmpeg_bin import ffmpeg_exe

        png = _run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "hevc", "-i", "pipe:", "-frames:v", "1",
                    "-f", "image2pipe", "-c:v", "png", "pipe:"], data)
        data = png
    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = np.asarray(im.convert("RGB"))
    except Exception as exc:  # Pillow raises many types for data it cannot read
        raise InrError(f"not a decodable image ({type(exc).__name__})") from None
    if size is not None:
        rgb = rgb[: size[0], : size[1]]
    return np.ascontiguousarray(rgb)


def code(rgb: np.ndarray, codec: str, quality: int) -> ImageCoded:
    """Encode and decode back, timing both: one point of a quality sweep."""
    rgb = _check_rgb(rgb)
    t0 = time.perf_counter()
    data = encode(rgb, codec, quality)
    t1 = time.perf_counter()
    decoded = decode(data, rgb.shape[:2])
    t2 = time.perf_counter()
    if decoded.shape != rgb.shape:
        raise InrError(f"{codec} decoded a {decoded.shape} image from a {rgb.shape} one")
    return ImageCoded(codec, int(quality), data, decoded, t1 - t0, t2 - t1)


def sweep(rgb: np.ndarray, codec: str, qualities: tuple[int, ...] | list[int] = DEFAULT_QUALITIES) -> list[ImageCoded]:
    """One coded point per quality, in the order given."""
    check_codec(codec)
    return [code(rgb, codec, q) for q in qualities]


@dataclass
class SizeMatch(ImageCoded):
    target_bytes: int = 0
    fits: bool = True  # False: even the lowest quality is larger than the target


def match_size(rgb: np.ndarray, codec: str, target_bytes: int) -> SizeMatch:
    """The highest quality whose file is at most `target_bytes` (binary search over quality:
    bytes grow with quality for these encoders, up to a few bytes' wobble at the lowest
    settings, where the search may settle one step low; the result always fits). When even the lowest quality
    is too big, that lowest-quality point is returned with `fits=False`, so a caller can
    still show the closest the codec gets (e.g. a playback companion at the INR's size)."""
    if target_bytes <= 0:
        raise InrError("target size must be positive")
    rgb = _check_rgb(rgb)
    lo, hi = quality_range(codec)
    smallest = code(rgb, codec, lo)
    if smallest.bytes > target_bytes:
        return SizeMatch(**vars(smallest), target_bytes=int(target_bytes), fits=False)
    best, lo = smallest, lo + 1
    while lo <= hi:  # invariant: best is the highest quality known to fit
        mid = (lo + hi) // 2
        point = code(rgb, codec, mid)
        if point.bytes <= target_bytes:
            best, lo = point, mid + 1
        else:
            hi = mid - 1
    return SizeMatch(**vars(best), target_bytes=int(target_bytes), fits=True)
