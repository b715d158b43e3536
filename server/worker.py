"""Worker processes and their supervisor.

Workers are separate processes (spawned, not forked: torch and fork do not mix), so the web
server stays responsive however heavy a fit is; each gets an equal share of the cores and
runs one job at a time under an address-space cap (RLIMIT_AS), so a job that overruns fails
on its own instead of exhausting the machine.

Each worker leads its own process group (its ffmpeg children included) and holds the read
end of a pipe whose write end only the server has: when the server dies, whatever the
signal, the pipe reads EOF and the worker kills its group. A thread in the worker renews the
running job's lease (heartbeat) every second.

The supervisor (a thread of the server) replaces dead workers and fails their jobs, stops a
job that ignores a cancel for `cancel_grace_s` (decode and probe have no progress callback
to see it) or overruns its runtime limit, and fails jobs whose heartbeat is older than
`lease_s`. `stop()` ends workers (SIGTERM, then SIGKILL) and leaves no job "running".
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from pathlib import Path

from inr.errors import InrError
from inr.memory import return_freed_memory

log = logging.getLogger("inr.server")
SHUTDOWN_MESSAGE = "interrupted: the server shut down while this job ran"


def configure_log(prefix: str) -> None:
    """One line per event on stderr for the server's own logger only (not every library's)."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"{prefix}: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class WorkerShutdown(BaseException):
    """Raised in a worker's main thread by SIGTERM: end the job as failed, then exit."""


def _on_sigterm(signum, frame) -> None:
    raise WorkerShutdown()


def _limit_memory(cap: int, device: str) -> None:
    """RLIMIT_AS = cap, except where CUDA will run (it maps huge virtual ranges at init)."""
    import resource

    if not cap:
        return
    if device != "cpu":
        import torch

        if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
            log.warning("per-job memory cap not applied: CUDA reserves more address space than any useful cap")
            return
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _watch(conn, parent: int, state: dict, store, beat: float = 1.0) -> None:
    """Exit with the server (pipe EOF or a new parent); renew the running job's lease."""
    pid = os.getpid()
    while True:
        try:
            if conn.poll(beat):
                conn.recv()  # the server never sends: anything readable means EOF
        except (EOFError, OSError):
            os.killpg(0, signal.SIGKILL)  # the server is gone: take our ffmpeg children too
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)
        job_id = state.get("job")
        if job_id:
            try:
                store.heartbeat(job_id, pid)
            except Exception:  # a locked database for a moment: the lease tolerates missed beats
                pass


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "not enough memory" in str(exc)))


def worker_main(db_path: str, data_dir: str, threads: int, device: str, conn=None, memory_cap: int = 0, poll: float = 0.5) -> None:
    os.setpgrp()  # our ffmpeg children are ours to kill; a terminal's Ctrl-C goes to the server
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when we stop
    configure_log(f"inr worker {os.getpid()}")
    return_freed_memory()
    try:
        _work(db_path, Path(data_dir), threads, device, conn, parent, memory_cap, poll)
    except WorkerShutdown:  # stopped between jobs (or while starting): nothing to record
        return


def _work(db_path: str, data: Path, threads: int, device: str, conn, parent: int, memory_cap: int, poll: float) -> None:
    from server.store import JobStore

    store = JobStore(db_path)
    state: dict = {"job": None}
    if conn is not None:
        threading.Thread(target=_watch, args=(conn, parent, state, store), daemon=True).start()
    _limit_memory(memory_cap, device)
    import torch

    from server.jobs import JobCancelled, run_job
    from server.retention import drop_upload, job_dir
    from server.service import user_message

    torch.set_num_threads(max(1, threads))
    pid = os.getpid()
    while True:
        job = store.claim_next(pid)
        if job is None:
            time.sleep(poll)
            continue
        state["job"] = job["id"]
        names = {job["input"]: job["input_name"], str(job_dir(data, job["id"])) + "/": ""}
        try:
            artifacts = run_job(job, store, data, device)
            store.finish(job["id"], "done", artifacts=artifacts)
        except JobCancelled:
            store.finish(job["id"], "cancelled", error="cancelled by request")
        except WorkerShutdown:
            store.finish(job["id"], "failed", error=SHUTDOWN_MESSAGE)
            raise
        except InrError as exc:  # expected: one line, no traceback
            msg = user_message(str(exc), names, data)
            log.info("job %s failed: %s", job["id"], msg)
            store.finish(job["id"], "failed", error=msg)
        except Exception as exc:  # a bug or an overrun in one job must not take the worker down
            if _is_out_of_memory(exc):
                cap = f" (the per-job cap is {memory_cap / 2**30:.1f} GiB)" if memory_cap else ""
                msg = f"the job ran out of memory{cap}; use max_frames, resize or a smaller model"
                log.info("job %s failed: %s", job["id"], msg)
            else:
                msg = "internal error: " + user_message(f"{type(exc).__name__}: {exc}", names, data)
                log.exception("job %s failed", job["id"])  # the traceback goes to the server log only
            store.finish(job["id"], "failed", error=msg)
        finally:
            state["job"] = None
            drop_upload(data, job["input"])


class WorkerPool:
    def __init__(self, db_path: Path, data_dir: Path, workers: int = 1, device: str = "auto", memory_cap: int = 0,
                 lease_s: float = 30.0, cancel_grace_s: float = 3.0, retention=None, tick_s: float = 0.5):
        self.db_path, self.data_dir = Path(db_path), Path(data_dir)
        self.workers, self.device, self.memory_cap = max(1, workers), device, memory_cap
        self.lease_s, self.cancel_grace_s, self.tick_s = lease_s, cancel_grace_s, tick_s
        self.retention = retention
        self.procs: dict[int, tuple[mp.process.BaseProcess, object]] = {}  # pid -> (process, pipe write end)
        self._born: dict[int, float] = {}
        self._killed: set[int] = set()  # stopped by the supervisor, not dead by themselves
        self._next_spawn, self._quick_deaths = 0.0, 0  # back-off when workers die at start-up
        self._ctx = mp.get_context("spawn")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.replaced = 0

    # -------------------------------------------------------------- processes
    def _spawn(self) -> None:
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        read, write = self._ctx.Pipe(duplex=False)
        p = self._ctx.Process(target=worker_main, args=(str(self.db_path), str(self.data_dir), threads, self.device, read, self.memory_cap), daemon=True)
        p.start()
        read.close()  # only the worker holds the read end: its EOF is our death
        self.procs[p.pid] = (p, write)  # type: ignore[index]
        self._born[p.pid] = time.monotonic()  # type: ignore[index]

    def pids(self) -> list[int]:
        with self._lock:
            return list(self.procs)

    @staticmethod
    def _kill(p: mp.process.BaseProcess, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(p.pid, sig)  # the worker and its ffmpeg children
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(p.pid, sig)  # type: ignore[arg-type]
            except ProcessLookupError:
                pass

    def start(self) -> None:
        from server.store import JobStore

        self._store = JobStore(self.db_path)
        with self._lock:
            for _ in range(self.workers):
                self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="inr-supervisor", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- supervision
    def _supervise(self) -> None:
        last_sweep = 0.0
        while not self._stop.wait(self.tick_s):
            try:
                self.check()
                if self.retention is not None and time.monotonic() - last_sweep > self.retention.sweep_every_s:
                    last_sweep = time.monotonic()
                    from server.retention import sweep

                    sweep(self._store, self.data_dir, self.retention)
            except Exception:  # the supervisor must outlive any one bad tick
                log.exception("supervisor tick failed")

    def _end(self, job: dict, status: str, error: str) -> None:
        from server.retention import drop_upload

        if self._store.finish(job["id"], status, error=error):
            log.info("job %s %s: %s", job["id"], status, error)
        drop_upload(self.data_dir, job["input"])

    def check(self) -> None:
        """One supervision pass (the thread runs it every tick_s; tests may call it)."""
        with self._lock:
            if self._stop.is_set():
                return
            for pid, (p, write) in list(self.procs.items()):
                if p.is_alive():
                    continue
                code = p.exitcode
                how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
                hint = " (SIGKILL often means the machine ran out of memory)" if code == -signal.SIGKILL else ""
                failed = self._store.fail_running(f"the worker running this job died ({how}){hint}", [pid])
                for job_id in failed:
                    log.warning("worker %d died (%s); job %s failed", pid, how, job_id)
                    job = self._store.get(job_id)
                    if job:
                        from server.retention import drop_upload

                        drop_upload(self.data_dir, job["input"])
                del self.procs[pid]
                write.close()  # type: ignore[attr-defined]
                p.join(0)
                self.replaced += 1
                started_recently = time.monotonic() - self._born.pop(pid, 0.0) < 10
                if not failed and pid not in self._killed and started_recently:  # died starting (a bad install, a tiny memory cap): do not spin
                    self._quick_deaths += 1
                    self._next_spawn = time.monotonic() + min(60.0, 2.0 ** self._quick_deaths)
                    log.warning("worker %d died while starting (%s); next start in %.0f s", pid, how, self._next_spawn - time.monotonic())
                else:
                    self._quick_deaths = 0
                self._killed.discard(pid)
            while len(self.procs) < self.workers and time.monotonic() >= self._next_spawn:
                self._spawn()
            now = time.time()
            for job in self._store.running():
                owner = self.procs.get(job["worker"])
                if job["cancel_requested"] and job.get("cancel_at") and now - job["cancel_at"] > self.cancel_grace_s:
                    reason = ("cancelled", "cancelled by request (stopped)")
                elif job.get("runtime_limit") and job.get("started") and now - job["started"] > job["runtime_limit"]:
                    reason = ("failed", f"stopped: the job ran longer than this server allows ({job['runtime_limit']:.0f} s)")
                elif job.get("heartbeat") is not None and now - job["heartbeat"] > self.lease_s:
                    reason = ("failed", f"the worker running this job stopped responding for {self.lease_s:.0f} s")
                else:
                    continue
                if owner is not None:
                    self._killed.add(owner[0].pid)  # type: ignore[arg-type]
                    self._kill(owner[0])  # replaced on the next pass, when it is seen dead
                    owner[0].join(5)
                self._end(job, *reason)

    # -------------------------------------------------------------- shutdown
    def stop(self, grace_s: float = 3.0) -> None:
        """Stop supervising, end every worker, and fail whatever they were running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            procs = dict(self.procs)
            for p, _ in procs.values():
                self._kill(p, signal.SIGTERM)  # the worker fails its job itself, then exits
            deadline = time.monotonic() + grace_s
            for p, _ in procs.values():
                p.join(max(0.0, deadline - time.monotonic()))
            for p, write in procs.values():
                if p.is_alive():
                    self._kill(p)  # its group: ffmpeg children included
                    p.join(5)
                write.close()  # type: ignore[attr-defined]
            if hasattr(self, "_store"):
                self._store.fail_running(SHUTDOWN_MESSAGE, list(procs))
            self.procs.clear()
