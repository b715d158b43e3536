"""Persistent job store: one SQLite database (WAL) shared by the API process and workers.

Each process opens its own connection. Claiming a job is one IMMEDIATE transaction, so two
workers can never run the same job. On start-up `recover()` marks jobs left `running` by a
dead server as failed ("interrupted"): none stays running forever, none disappears.
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

    def create(self, kind: str, params: dict, input_path: str, input_name: str) -> dict:
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        job_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, kind, params, input, input_name, status, created) VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                (job_id, kind, json.dumps(params), input_path, input_name, time.time()),
            )
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            return self._row(self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def list(self, limit: int = 200) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def claim_next(self) -> dict | None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created LIMIT 1").fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                self._db.execute("UPDATE jobs SET status = 'running', started = ? WHERE id = ?", (time.time(), row["id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(row["id"])

    def set_progress(self, job_id: str, progress: dict) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET progress = ? WHERE id = ?", (json.dumps(progress), job_id))

    def finish(self, job_id: str, status: str, error: str = "", artifacts: list[str] | None = None) -> None:
        if status not in ("done", "failed", "cancelled"):
            raise ValueError(status)
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = ?, error = ?, artifacts = ?, finished = ? WHERE id = ?",
                (status, error, json.dumps(artifacts or []), time.time(), job_id),
            )

    def request_cancel(self, job_id: str) -> dict | None:
        """Queued jobs are cancelled at once; running ones are flagged and stop at their next step."""
        with self._lock:
            self._db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
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
