"""Persistent job store: one SQLite database (WAL) shared by the API process and workers.

Each process opens its own connection. Claiming a job is one IMMEDIATE transaction, so two
workers can never run the same job. A running job carries a lease: the claiming worker's pid
and a heartbeat it renews every second; the supervisor (server/worker.py) fails jobs whose
worker died or whose heartbeat went stale. On start-up `recover()` marks jobs left `running`
by a dead server as failed ("interrupted"): none stays running forever, none disappears.
Final transitions of a running job are guarded by `status = 'running'`, so a worker that
finishes and a supervisor that gives up on it cannot both win.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path

STATUSES = ("queued", "running", "done", "failed", "cancelled")
KINDS = ("fit", "encode", "decode", "compare")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    input TEXT NOT NULL,
    input_name TEXT NOT NULL,
    status TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT '',
    artifacts TEXT NOT NULL DEFAULT '[]',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
"""
# Columns added after the first release; older databases get them on open.
LEASE_COLUMNS = {"worker": "INTEGER", "heartbeat": "REAL", "cancel_at": "REAL", "runtime_limit": "REAL"}
FINAL = ("done", "failed", "cancelled")


class JobStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, typ in LEASE_COLUMNS.items():
            if name not in have:
                try:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {typ}")
                except sqlite3.OperationalError:  # another process added it first
                    pass

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _row(row: sqlite3.Row | None) -> dict | None:
        if row is None:
            return None
        d = dict(row)
        for key in ("params", "progress", "artifacts"):
            d[key] = json.loads(d[key])
        d["cancel_requested"] = bool(d["cancel_requested"])
        return d

    def create(self, kind: str, params: dict, input_path: str, input_name: str, runtime_limit: float | None = None) -> dict:
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        job_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, kind, params, input, input_name, status, created, runtime_limit) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                (job_id, kind, json.dumps(params), input_path, input_name, time.time(), runtime_limit),
            )
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            return self._row(self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def list(self, limit: int = 200) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def claim_next(self, worker: int = 0) -> dict | None:
        """The oldest queued job, now running under `worker`'s lease (pid, fresh heartbeat)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created LIMIT 1").fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                now = time.time()
                self._db.execute("UPDATE jobs SET status = 'running', started = ?, worker = ?, heartbeat = ? WHERE id = ?", (now, worker, now, row["id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(row["id"])

    def set_progress(self, job_id: str, progress: dict) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET progress = ? WHERE id = ?", (json.dumps(progress), job_id))

    def heartbeat(self, job_id: str, worker: int) -> None:
        """Renew the lease of a running job (only the worker that holds it can)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET heartbeat = ? WHERE id = ? AND worker = ? AND status = 'running'", (time.time(), job_id, worker))

    def finish(self, job_id: str, status: str, error: str = "", artifacts: list[str] | None = None) -> bool:
        """Running -> final; False when the job was no longer running (someone else ended it)."""
        if status not in FINAL:
            raise ValueError(status)
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET status = ?, error = ?, artifacts = ?, finished = ? WHERE id = ? AND status = 'running'",
                (status, error, json.dumps(artifacts or []), time.time(), job_id),
            )
        return cur.rowcount == 1

    def running(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def fail_running(self, error: str, workers: list[int] | None = None) -> list[str]:
        """Fail every running job (of these workers, when given); returns their ids."""
        with self._lock:
            rows = self._db.execute("SELECT id, worker FROM jobs WHERE status = 'running'").fetchall()
            ids = [r["id"] for r in rows if workers is None or r["worker"] in workers]
            for job_id in ids:
                self._db.execute("UPDATE jobs SET status = 'failed', error = ?, finished = ? WHERE id = ? AND status = 'running'", (error, time.time(), job_id))
        return ids

    def inputs(self) -> dict[str, str]:
        """Upload path -> status of the job that owns it (for retention)."""
        with self._lock:
            return {r["input"]: r["status"] for r in self._db.execute("SELECT input, status FROM jobs")}

    def finished_before(self, when: float) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status IN ('done', 'failed', 'cancelled') AND finished < ?", (when,)).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def delete(self, job_id: str) -> bool:
        """Remove a job's row unless it is running (cancel it first)."""
        with self._lock:
            cur = self._db.execute("DELETE FROM jobs WHERE id = ? AND status != 'running'", (job_id,))
        return cur.rowcount == 1

    def request_cancel(self, job_id: str) -> dict | None:
        """Queued jobs are cancelled at once; running ones are flagged and stop at their next step."""
        with self._lock:
            self._db.execute("UPDATE jobs SET cancel_requested = 1, cancel_at = COALESCE(cancel_at, ?) WHERE id = ?", (time.time(), job_id))
            self._db.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ? AND status = 'queued'", (time.time(), job_id))
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def recover(self) -> int:
        """Jobs a previous server left running can't still be running: mark them failed."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET status = 'failed', error = 'interrupted: the server stopped while this job ran', finished = ? "
                "WHERE status = 'running'",
                (time.time(),),
            )
        return cur.rowcount
