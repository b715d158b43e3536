"""What the service accepts, checked before any work starts (the API answers 4xx)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from inr.errors import InrError

VIDEO_CONTAINERS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".y4m", ".m4v"}
IMAGE_TYPES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
CODECS = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "prores", "rawvideo", "ffv1", "mjpeg", "png"}


class LimitError(InrError):
    """The upload is acceptable as a request but not as work for this server (HTTP 413/422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass
class Limits:
    max_upload_bytes: int = 200 << 20
    max_pixel_frames: int = 1280 * 720 * 300  # width x height x frames after the requested resize/crop
    max_duration_s: float = 120.0
    containers: set[str] = field(default_factory=lambda: set(VIDEO_CONTAINERS))
    images: set[str] = field(default_factory=lambda: set(IMAGE_TYPES))
    codecs: set[str] = field(default_factory=lambda: set(CODECS))

    def check_suffix(self, name: str, kind: str) -> str:
        suffix = Path(name).suffix.lower()
        allowed = {".inr"} if kind == "decode" else self.containers | self.images
        if suffix not in allowed:
            raise LimitError(f"file type '{suffix or name}' is not accepted for {kind} jobs (allowed: {', '.join(sorted(allowed))})", 415)
        return suffix

    def check_media(self, path: Path, read) -> None:
        """Probe with ffmpeg: a decodable stream, an allowed codec, within size and duration."""
        from video.media import output_geometry, probe

        info = probe(path)  # raises InrError for anything ffmpeg can't read
        if info.kind == "video":
            if info.codec not in self.codecs:
                raise LimitError(f"video codec '{info.codec}' is not accepted")
            if info.fps and info.frames / info.fps > self.max_duration_s:
                raise LimitError(f"video is {info.frames / info.fps:.0f} s long; the limit is {self.max_duration_s:.0f} s", 413)
        t, h, w = output_geometry(info, read)
        if t * h * w > self.max_pixel_frames:
            raise LimitError(f"{t} frames of {w}x{h} exceed this server's limit of {self.max_pixel_frames} pixels; use max_frames or resize", 413)
