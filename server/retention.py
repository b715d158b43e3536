"""What the server keeps on disk, what it may serve, and for how long.

Layout under the data dir: `jobs.sqlite` (never served), `uploads/` (a job's input: deleted
when the job ends), `incoming/` (uploads being received or staged by the UI: deleted after
`incoming_max_age_s`), `jobs/<id>/` (artifacts: served, kept until the job is deleted or is
older than `job_max_age_s`) and `previews/` (UI snapshots of a running job's preview frame:
served, deleted after `preview_max_age_s`). The Gradio app must be given `served_paths()`
as its allowed paths: the artifact and preview folders, never the data dir itself.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("inr.server")

# Folders the app created in the system temp dir before previews moved under the data dir;
# swept by age so old installations stop accumulating them.
LEGACY_TEMP_PREFIXES = ("inr-preview-", "inr-ui-")


@dataclass
class Retention:
    preview_max_age_s: float = 3600.0
    incoming_max_age_s: float = 3600.0
    job_max_age_s: float | None = None  # None: finished jobs (row, artifacts) are kept until deleted
    sweep_every_s: float = 60.0


def jobs_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "jobs"


def job_dir(data_dir: Path, job_id: str) -> Path:
    """Where one job's artifacts live: the worker writes there, the API and the app serve from
    there, the sweep removes it."""
    return jobs_dir(data_dir) / job_id


def preview_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "previews"


def incoming_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "incoming"


def uploads_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "uploads"


def served_paths(data_dir: Path) -> list[str]:
    """The only folders a front end may serve files from (Gradio `allowed_paths`)."""
    out = [jobs_dir(data_dir), preview_dir(data_dir)]
    for p in out:
        p.mkdir(parents=True, exist_ok=True)
    return [str(p) for p in out]


def blocked_paths(data_dir: Path) -> list[str]:
    """Never served, whatever else is allowed (Gradio `blocked_paths`): the database and inputs."""
    d = Path(data_dir)
    return [str(d / "jobs.sqlite"), str(d / "jobs.sqlite-wal"), str(d / "jobs.sqlite-shm"), str(uploads_dir(d)), str(incoming_dir(d))]


def preview_snapshot(data_dir: Path, src: Path) -> Path:
    """Copy a file the worker keeps rewriting (preview.png) to a stable, served, swept place."""
    folder = preview_dir(data_dir) / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / Path(src).name
    shutil.copyfile(src, dest)
    return dest


def stage_upload(data_dir: Path, src: Path) -> Path:
    """A private copy of a front end's temp file for `submit` to consume (swept by age if not)."""
    folder = incoming_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"staged-{uuid.uuid4().hex}"
    shutil.copyfile(src, dest)
    return dest


def drop_upload(data_dir: Path, input_path: str | Path) -> None:
    """Delete a job's input once it can no longer be needed; only inside uploads/."""
    path = Path(input_path)
    if path.parent == uploads_dir(data_dir):
        path.unlink(missing_ok=True)


def delete_job_files(data_dir: Path, job: dict) -> None:
    drop_upload(data_dir, job["input"])
    shutil.rmtree(job_dir(data_dir, job["id"]), ignore_errors=True)


def _older_than(path: Path, age: float, now: float) -> bool:
    try:
        return now - path.stat().st_mtime > age
    except OSError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep(store, data_dir: Path, policy: Retention, now: float | None = None) -> dict[str, int]:
    """Apply the retention policy once; returns what was removed, by kind."""
    now = time.time() if now is None else now
    removed = {"uploads": 0, "incoming": 0, "previews": 0, "jobs": 0}
    owners = store.inputs()
    if uploads_dir(data_dir).is_dir():
        for f in uploads_dir(data_dir).iterdir():
            status = owners.get(str(f))
            # an upload whose job ended, or one no job owns (a crash between move and insert)
            if status in ("done", "failed", "cancelled") or (status is None and _older_than(f, policy.incoming_max_age_s, now)):
                _remove(f)
                removed["uploads"] += 1
    for folder, age, key in ((incoming_dir(data_dir), policy.incoming_max_age_s, "incoming"), (preview_dir(data_dir), policy.preview_max_age_s, "previews")):
        if folder.is_dir():
            for f in folder.iterdir():
                if _older_than(f, age, now):
                    _remove(f)
                    removed[key] += 1
    tmp = Path(tempfile.gettempdir())
    for prefix in LEGACY_TEMP_PREFIXES:
        for f in tmp.glob(prefix + "*"):
            if _older_than(f, policy.preview_max_age_s, now):
                _remove(f)
                removed["previews"] += 1
    if policy.job_max_age_s is not None:
        for job in store.finished_before(now - policy.job_max_age_s):
            if store.delete(job["id"]):
                delete_job_files(data_dir, job)
                removed["jobs"] += 1
    if any(removed.values()):
        log.info("retention: removed %s", ", ".join(f"{v} {k}" for k, v in removed.items() if v))
    return removed
