"""Submitting work: the one path from an uploaded file to a queued job (API and UI alike).

Everything a job would need is checked here, before it is queued: parameters (types, ranges),
the file (metadata probe with a timeout) and the resources (`estimate_job`). Messages name the
user's file, never a server path (`user_message`).
"""
from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from inr.errors import InrError
from inr.models.auto import AUTO, check_handles
from server.jobs import bound_budget, read_options, runtime_limit, validate_params
from server.limits import LimitError, Limits, estimate_job
from server.retention import uploads_dir
from video.media import media_kind
from server.store import KINDS, JobStore


def user_message(text: str, names: dict[str, str], data_dir: Path | None = None) -> str:
    """`text` with server paths replaced: each key of `names` (a path) by its value (what the
    user calls it), and anything else under `data_dir` by its file name. One line."""
    for path, name in sorted(names.items(), key=lambda kv: -len(kv[0])):
        if path:
            text = text.replace(path, name)
    if data_dir is not None:
        root = re.escape(str(Path(data_dir).resolve()) if Path(data_dir).exists() else str(data_dir))
        text = re.sub(rf"{root}/(?:[^\s'\":]*/)?([^\s/'\":]+)", r"\1", text)
        text = re.sub(rf"{re.escape(str(data_dir))}/(?:[^\s'\":]*/)?([^\s/'\":]+)", r"\1", text)
    return " ".join(text.split())[:1000]


def accept_upload(src: Path, filename: str, kind: str, params: dict, data_dir: Path, limits: Limits, workers: int = 1) -> tuple[Path, dict]:
    """Validate params, file and resources, move it under a generated name; the caller's file
    is consumed. Raises InrError / LimitError with user-facing messages; nothing is kept on failure.
    """
    user_name = Path(filename).name or "upload"
    try:
        if kind not in KINDS:
            raise LimitError(f"unknown job kind '{kind}' (choose from {', '.join(KINDS)})")
        params = validate_params(kind, params, limits)
        suffix = limits.check_suffix(filename, kind)
        size = src.stat().st_size
        if size == 0:
            raise LimitError("empty upload")
        if size > limits.max_upload_bytes:
            raise LimitError(f"upload exceeds {limits.max_upload_bytes >> 20} MiB", 413)
    except BaseException:
        src.unlink(missing_ok=True)
        raise
    uploads = uploads_dir(data_dir)
    uploads.mkdir(parents=True, exist_ok=True)
    dest = uploads / f"{uuid.uuid4().hex}{suffix}"
    shutil.move(str(src), dest)
    try:
        if kind == "decode":
            from video.gop_encode import inspect

            inspect(dest)  # either format version: one GOP or an index of GOPs
        else:
            geometry = limits.check_media(dest, read_options(params))
            media = media_kind(dest)
            for model in params.get("models") or [params.get("model", AUTO)]:
                check_handles(model, media, user_name)
            bound_budget(kind, params, media, limits)
            estimate_job(kind, params, geometry, limits, workers)
            if "max_frames" not in params:
                # The check read container metadata; should it understate the frames, the
                # worker still reads no more than this server's pixel budget allows.
                params["max_frames"] = max(1, limits.max_pixel_frames // (geometry[1] * geometry[2]))
    except InrError as exc:
        dest.unlink(missing_ok=True)
        message = user_message(str(exc), {str(dest): user_name, str(src): user_name}, data_dir)
        raise (LimitError(message, exc.status) if isinstance(exc, LimitError) else InrError(message)) from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest, params


def submit(store: JobStore, src: Path, filename: str, kind: str, params: dict, data_dir: Path, limits: Limits, workers: int = 1) -> dict:
    dest, params = accept_upload(src, filename, kind, params, data_dir, limits, workers)
    try:
        return store.create(kind, params, str(dest), Path(filename).name[:200] or "upload", runtime_limit(kind, params, limits))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
