"""REST API (FastAPI): create jobs with an upload, follow them, cancel them, fetch artifacts.

Uploads are streamed to disk under a generated name (never a client-supplied path) with the
size limit enforced while streaming, then checked (ffmpeg metadata probe with a timeout,
parameters, resource estimate) before a job exists. The check runs in a small thread pool
off the event loop, so a slow probe never stalls other requests. With a token configured,
every route (OpenAPI included) needs `Authorization: Bearer <token>`.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import secrets
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from inr.errors import InrError
from server.limits import LimitError, Limits
from server.retention import Retention, delete_job_files, drop_upload, incoming_dir, job_dir
from server.store import KINDS, JobStore

TOKEN_ENV = "INR_TOKEN"
INLINE_SUFFIXES = {".html", ".png", ".jpg", ".jpeg", ".webp", ".avif", ".mp4", ".webm", ".json"}
PRIVATE_FIELDS = ("input", "worker", "heartbeat", "cancel_at")
log = logging.getLogger("inr.server")


@dataclass
class ServerConfig:
    data_dir: Path
    token: str | None = None
    limits: Limits = field(default_factory=Limits)
    workers: int = 1
    device: str = "auto"
    retention: Retention = field(default_factory=Retention)
    lease_s: float = 30.0  # a running job whose worker has not renewed its lease for this long fails
    cancel_grace_s: float = 3.0  # a cancelled job still running after this is stopped by force
    check_threads: int = 2  # uploads checked (probed) at once, off the event loop

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite"

    @property
    def memory_cap(self) -> int:
        """RLIMIT_AS of each worker, bytes (0: none)."""
        return self.limits.memory_cap(self.workers)

    def served_paths(self) -> list[str]:
        """What a front end (Gradio `allowed_paths`) may serve: artifacts and previews only."""
        from server.retention import served_paths

        return served_paths(self.data_dir)

    def blocked_paths(self) -> list[str]:
        from server.retention import blocked_paths

        return blocked_paths(self.data_dir)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "inr-codec"


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if token:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InrError(f"refusing to listen on {host} without a token: anyone on the network could run jobs. Use --token T (or {TOKEN_ENV}) or --host 127.0.0.1")


def public_job(job: dict) -> dict:
    """What clients see: no server-side paths, no worker internals."""
    out = {k: v for k, v in job.items() if k not in PRIVATE_FIELDS}
    out["artifacts"] = [{"name": a, "url": f"/api/jobs/{job['id']}/artifacts/{a}"} for a in job["artifacts"]]
    return out


def create_app(cfg: ServerConfig) -> FastAPI:
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(cfg.db_path)

    app = FastAPI(title="inr-codec", version="0.1.0")
    app.state.store = store
    app.state.config = cfg
    checks = ThreadPoolExecutor(max_workers=max(1, cfg.check_threads), thread_name_prefix="inr-check")
    app.state.checks = checks

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        """Every route, the OpenAPI schema and docs included, when a token is configured."""
        if cfg.token and request.url.path != "/login":
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            given = given.strip() if scheme.lower() == "bearer" else request.cookies.get("inr_token", "")
            if not secrets.compare_digest(given.encode(), cfg.token.encode()):
                return JSONResponse(status_code=401, content={"detail": "missing or wrong bearer token"}, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(InrError)
    async def inr_error(_: Request, exc: InrError) -> JSONResponse:
        """Expected errors: a 4xx with the message, one log line, no traceback."""
        status = exc.status if isinstance(exc, LimitError) else 422
        log.info("refused (%d): %s", status, exc)
        return JSONResponse(status_code=status, content={"detail": str(exc)})

    @app.get("/login")
    def login(token: str = "") -> JSONResponse:
        """Browsers cannot send bearer headers for page loads: /login?token=T sets a cookie."""
        from fastapi.responses import RedirectResponse

        if not cfg.token or not secrets.compare_digest(token.encode(), cfg.token.encode()):
            return JSONResponse(status_code=401, content={"detail": "wrong token"})
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie("inr_token", token, httponly=True, samesite="strict")
        return resp

    @app.get("/api/health")
    def health() -> dict:
        return {"ok": True}

    @app.post("/api/jobs", status_code=201)
    async def create_job(kind: str = Form(...), params: str = Form("{}"), file: UploadFile = File(...)) -> dict:
        from server.service import submit

        try:
            parsed = json.loads(params or "{}")
        except json.JSONDecodeError:
            raise HTTPException(422, "params must be JSON") from None
        cfg.limits.check_suffix(file.filename or "", kind if kind in KINDS else "encode")
        # Stream to a temp file, enforcing the size limit while the bytes arrive.
        tmp_dir = incoming_dir(cfg.data_dir)
        tmp_dir.mkdir(exist_ok=True)
        tmp = tmp_dir / uuid.uuid4().hex
        size = 0
        try:
            with tmp.open("wb") as f:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > cfg.limits.max_upload_bytes:
                        raise LimitError(f"upload exceeds {cfg.limits.max_upload_bytes >> 20} MiB", 413)
                    f.write(chunk)
            # Probing runs ffmpeg (bounded by probe_timeout_s): never on the event loop.
            loop = asyncio.get_running_loop()
            job = await loop.run_in_executor(checks, submit, store, tmp, file.filename or "upload", kind, parsed, cfg.data_dir, cfg.limits, cfg.workers)
        finally:
            tmp.unlink(missing_ok=True)
        return public_job(job)

    @app.get("/api/jobs")
    def list_jobs(limit: int = 100) -> list[dict]:
        return [public_job(j) for j in store.list(min(max(limit, 1), 1000))]

    def _job(job_id: str) -> dict:
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str) -> dict:
        return public_job(_job(job_id))

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict:
        job = _job(job_id)
        if job["status"] in ("done", "failed", "cancelled"):
            raise HTTPException(409, f"job {job_id} already {job['status']}")
        job = store.request_cancel(job_id)
        if job and job["status"] == "cancelled":
            drop_upload(cfg.data_dir, job["input"])  # a queued job never needs its input again
        return public_job(job)  # type: ignore[arg-type]

    @app.delete("/api/jobs/{job_id}")
    def delete_job(job_id: str) -> dict:
        """Remove a finished job with its upload and artifacts (a running one: cancel first)."""
        job = _job(job_id)
        if job["status"] in ("queued", "running") or not store.delete(job_id):
            raise HTTPException(409, f"job {job_id} is {job['status']}: cancel it first")
        delete_job_files(cfg.data_dir, job)
        return {"deleted": job_id}

    @app.get("/api/jobs/{job_id}/artifacts/{name:path}")
    def artifact(job_id: str, name: str) -> FileResponse:
        job = _job(job_id)
        if name not in job["artifacts"]:  # only names the worker recorded: no path games
            raise HTTPException(404, f"job {job_id} has no artifact {name}")
        path = job_dir(cfg.data_dir, job_id) / name
        if not path.is_file():
            raise HTTPException(404, "artifact missing on disk")
        # What a browser can show is opened inline (report.html, images, video); the rest downloads.
        inline = path.suffix.lower() in INLINE_SUFFIXES
        return FileResponse(path, filename=Path(name).name, content_disposition_type="inline" if inline else "attachment")

    return app


def _exit_on_sigterm(signum, frame) -> None:
    """uvicorn re-raises the signal it caught after its graceful shutdown; with this handler
    that becomes SystemExit, so serve()'s `finally` stops the workers (the default action
    would kill the process and orphan them)."""
    raise SystemExit(128 + signum)


def serve(host: str, port: int, cfg: ServerConfig, compose: Callable[[FastAPI], FastAPI] | None = None) -> None:
    """Start workers and the HTTP server. `compose` may wrap the API app before it serves (the
    entry point mounts the Gradio UI this way, so the server never imports the UI).

    SIGTERM and SIGINT shut down cleanly: uvicorn drains, then the pool stops its workers and
    fails the job(s) they were running, so no job is left "running"."""
    import uvicorn

    from server.retention import sweep
    from server.worker import WorkerPool, configure_log

    check_bind(host, cfg.token)
    configure_log("inr server")
    app = create_app(cfg)
    recovered = app.state.store.recover()
    if recovered:
        print(f"marked {recovered} interrupted job(s) as failed")
    sweep(app.state.store, cfg.data_dir, cfg.retention)
    import video.media  # noqa: F401  (torch, ffmpeg-python: imported now, not by the first upload check)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    pool = WorkerPool(cfg.db_path, cfg.data_dir, cfg.workers, cfg.device, memory_cap=cfg.memory_cap,
                      lease_s=cfg.lease_s, cancel_grace_s=cfg.cancel_grace_s, retention=cfg.retention)
    pool.start()
    try:
        if compose is not None:
            app = compose(app)
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    except KeyboardInterrupt:
        pass
    finally:
        pool.stop()
        app_state = getattr(app, "state", None)
        if app_state is not None and hasattr(app_state, "checks"):
            app_state.checks.shutdown(wait=False, cancel_futures=True)
        signal.signal(signal.SIGTERM, previous)
