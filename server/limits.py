"""What the service accepts, checked before any work starts (the API answers 4xx).

Two kinds of check live here: the upload itself (type, container, codec, duration, pixels x
frames, read from the container's metadata within `probe_timeout_s`) and the resources the
job would need (`estimate_job`: model size from `params` or from bpp x pixels / bits, and a
rough memory figure compared with the per-job memory cap the workers run under). A job that
could not fit is refused before it is queued, not discovered by a worker at run time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from inr.errors import InrError
from video.media import IMAGE_EXTS

VIDEO_CONTAINERS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".y4m", ".m4v"}
CODECS = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "prores", "rawvideo", "ffv1", "mjpeg", "png"}
GiB = 1 << 30


class LimitError(InrError):
    """The upload is acceptable as a request but not as work for this server (HTTP 413/422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def default_job_memory(workers: int = 1) -> int:
    """Half the machine's memory shared between the workers, at least 2 GiB each: a job that
    overruns fails on its own instead of taking the server (and the machine) with it."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * GiB
    return max(2 * GiB, total // 2 // max(1, workers))


@dataclass
class Limits:
    max_upload_bytes: int = 200 << 20
    max_pixel_frames: int = 1280 * 720 * 300  # width x height x frames after the requested resize/crop
    max_frame_pixels: int = 3840 * 2160  # one frame (after resize/crop): activations grow with it
    max_duration_s: float = 120.0
    max_model_params: int = 50_000_000  # stored parameters, from `params` or bpp x pixels / bits
    max_seconds: float = 6 * 3600.0  # fit time budget; also the wall-clock cap of epoch/step budgets
    max_epochs: int = 100_000
    max_steps: int = 10_000_000
    max_list: int = 12  # entries in compare's lists (models, bpps, crfs, ...)
    max_runtime_s: float = 24 * 3600.0  # a running job past this is stopped and failed
    decode_timeout_s: float = 600.0  # a decode job past this is stopped and failed
    probe_timeout_s: float = 30.0  # one ffmpeg call while checking an upload
    job_memory_bytes: int | None = None  # RLIMIT_AS per worker; None: default_job_memory(workers); 0: off
    containers: set[str] = field(default_factory=lambda: set(VIDEO_CONTAINERS))
    images: set[str] = field(default_factory=lambda: set(IMAGE_EXTS))
    codecs: set[str] = field(default_factory=lambda: set(CODECS))

    def memory_cap(self, workers: int = 1) -> int:
        """Bytes of address space one job may use (0: no cap)."""
        return default_job_memory(workers) if self.job_memory_bytes is None else max(0, int(self.job_memory_bytes))

    def check_suffix(self, name: str, kind: str) -> str:
        suffix = Path(name).suffix.lower()
        allowed = {".inr"} if kind == "decode" else self.containers | self.images
        if suffix not in allowed:
            raise LimitError(f"file type '{suffix or name}' is not accepted for {kind} jobs (allowed: {', '.join(sorted(allowed))})", 415)
        return suffix

    def check_media(self, path: Path, read) -> tuple[int, int, int]:
        """Probe the container (metadata only, bounded in time): a readable stream, an allowed
        codec, within duration and pixel limits. Returns (frames, height, width) to be read."""
        from video.media import output_geometry, probe

        info = probe(path, exact=False, timeout=self.probe_timeout_s)  # InrError for anything ffmpeg can't read
        if info.kind == "video":
            if info.codec not in self.codecs:
                raise LimitError(f"video codec '{info.codec}' is not accepted")
            duration = info.duration or (info.frames / info.fps if info.fps else 0.0)
            if duration > self.max_duration_s:
                raise LimitError(f"video is {duration:.0f} s long; the limit is {self.max_duration_s:.0f} s", 413)
        t, h, w = output_geometry(info, read)
        if h * w > self.max_frame_pixels:
            raise LimitError(f"frames of {w}x{h} exceed this server's limit of {self.max_frame_pixels} pixels per frame; use resize", 413)
        if t * h * w > self.max_pixel_frames:
            raise LimitError(f"{t} frames of {w}x{h} exceed this server's limit of {self.max_pixel_frames} pixels; use max_frames or resize", 413)
        return t, h, w


def estimate_job(kind: str, params: dict, geometry: tuple[int, int, int], limits: Limits, workers: int = 1) -> dict:
    """Rough resources of a validated fit/encode/compare job on a (frames, height, width) input;
    raises LimitError (413) when the model or the memory would exceed this server's limits.

    The memory figure is deliberately simple and generous: frames as uint8 plus float32 target
    and reconstruction (9 bytes a pixel and channel), ~512 bytes of live activations per pixel
    of one frame (conv decoders with backward), and 16 bytes a parameter (weights, gradients,
    two Adam moments). An encode with a `gop` holds one group of frames and its model at a
    time (video.gop_encode shares `params` among the groups by frames), so both are counted
    for one group.
    """
    from inr.models import parse_param_budget

    t, h, w = geometry
    share = min(t, params["gop"]) / t if kind == "encode" and params.get("gop") else 1.0
    pixels = round(t * share) * h * w
    if kind == "compare":
        model_params = max(int(b * pixels / 8) for b in params["bpps"])
    elif "params" in params:
        model_params = int(parse_param_budget(str(params["params"])) * share)
    elif "bpp" in params:
        model_params = int(params["bpp"] * pixels / params.get("bits", 8))
    else:
        model_params = 0  # the model's default size: small by construction
    if model_params > limits.max_model_params:
        raise LimitError(f"the model would have about {model_params / 1e6:.1f} M parameters; this server's limit is {limits.max_model_params / 1e6:.1f} M (lower params or bpp)", 413)
    memory = pixels * 3 * 9 + h * w * 512 + model_params * 16
    cap = limits.memory_cap(workers)
    if cap and memory > cap:
        raise LimitError(f"this job would need about {memory / GiB:.1f} GiB of memory; a job may use {cap / GiB:.1f} GiB here (use max_frames, resize or a smaller model)", 413)
    return {"pixels": pixels, "model_params": model_params, "memory_bytes": memory}
