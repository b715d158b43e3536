"""Worker processes: claim queued jobs from the store and run them, one at a time each.

Workers are separate processes (spawned, not forked: torch and fork do not mix), so the web
server stays responsive however heavy a fit is. Each worker gets an equal share of the cores.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from pathlib import Path

from inr.errors import InrError


def worker_main(db_path: str, data_dir: str, threads: int, device: str, poll: float = 0.5) -> None:
    import torch

    from server.jobs import JobCancelled, run_job
    from server.store import JobStore

    torch.set_num_threads(max(1, threads))
    store = JobStore(db_path)
    while True:
        job = store.claim_next()
        if job is None:
            time.sleep(poll)
            continue
        try:
            artifacts = run_job(job, store, Path(data_dir), device)
            store.finish(job["id"], "done", artifacts=artifacts)
        except JobCancelled:
            store.finish(job["id"], "cancelled", error="cancelled by request")
        except InrError as exc:
            store.finish(job["id"], "failed", error=str(exc))
        except Exception as exc:  # a bug in one job must not take the worker down
            store.finish(job["id"], "failed", error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")


class WorkerPool:
    def __init__(self, db_path: Path, data_dir: Path, workers: int = 1, device: str = "auto"):
        self.args = (str(db_path), str(data_dir))
        self.workers, self.device = max(1, workers), device
        self.procs: list[mp.process.BaseProcess] = []

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        for _ in range(self.workers):
            p = ctx.Process(target=worker_main, args=(*self.args, threads, self.device), daemon=True)
            p.start()
            self.procs.append(p)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.join(timeout=10)
        self.procs.clear()
