"""Submitting work: the one path from an uploaded file to a queued job (API and UI alike)."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from server.jobs import read_options, validate_params
from server.limits import LimitError, Limits
from server.store import KINDS, JobStore


def accept_upload(src: Path, filename: str, kind: str, params: dict, data_dir: Path, limits: Limits) -> tuple[Path, dict]:
    """Validate params and file, move it under a generated name; the caller's file is consumed.

    Raises InrError / LimitError with user-facing messages; nothing is kept on failure.
    """
    if kind not in KINDS:
        raise LimitError(f"unknown job kind '{kind}' (choose from {', '.join(KINDS)})")
    params = validate_params(kind, params)
    suffix = limits.check_suffix(filename, kind)
    size = src.stat().st_size
    if size == 0:
        raise LimitError("empty upload")
    if size > limits.max_upload_bytes:
        raise LimitError(f"upload exceeds {limits.max_upload_bytes >> 20} MiB", 413)
    uploads = data_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    dest = uploads / f"{uuid.uuid4().hex}{suffix}"
    shutil.move(str(src), dest)
    try:
        if kind == "decode":
            from video.encode import inspect_file

            inspect_file(dest)
        else:
            limits.check_media(dest, read_options(params))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest, params


def submit(store: JobStore, src: Path, filename: str, kind: str, params: dict, data_dir: Path, limits: Limits) -> dict:
    dest, params = accept_upload(src, filename, kind, params, data_dir, limits)
    return store.create(kind, params, str(dest), Path(filename).name[:200] or "upload")
