"""The job server against hostile parameters, slow probes, dying workers and dying servers.

Loopback only. Every wait is bounded; assertions are on behaviour (statuses, processes, what
was answered while a probe was still blocked), never on how fast something was.
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from test_server import _upload, _wait

from inr.errors import InrError
from server.api import ServerConfig, create_app
from server.limits import Limits
from server.retention import Retention, served_paths, sweep
from server.store import JobStore
from server.worker import WorkerPool

ROOT = Path(__file__).resolve().parents[1]


from tests.test_server import cfg, client  # noqa: E402,F401  (the same server fixtures)


def _wait_for(pred, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ------------------------------------------------------------------ parameters
HOSTILE = [
    ("fit", {"seconds": math.nan}, "finite"),
    ("fit", {"seconds": math.inf}, "finite"),
    ("fit", {"seconds": 1e300}, "<="),
    ("fit", {"seconds": "60"}, "number"),
    ("fit", {"seconds": True}, "number"),
    ("fit", {"epochs": 1e12}, "integer"),
    ("fit", {"epochs": 10**12}, "between"),
    ("fit", {"steps": -5}, "between"),
    ("fit", {"max_frames": 10**15}, "between"),
    ("fit", {"seed": [1]}, "integer"),
    ("fit", {"model": 5}, "string"),
    ("fit", {"model": {"a": 1}}, "string"),
    ("encode", {"params": "1000000M"}, "limit"),
    ("encode", {"params": ["1M"]}, "budget"),
    ("encode", {"params": math.inf}, "budget"),
    ("encode", {"bits": 1000}, "between"),
    ("encode", {"bits": 8.5}, "integer"),
    ("encode", {"bpp": math.nan}, "finite"),
    ("encode", {"bpp": -0.1}, ">"),
    ("encode", {"prune": 1.0}, "<="),
    ("encode", {"lr": math.inf}, "finite"),
    ("encode", {"resize": "100000x100000"}, "limited"),
    ("encode", {"resize": 320}, "string"),
    ("encode", {"resize": "8000x8000"}, "per frame"),  # within pixels x frames, not per frame
    ("compare", {"bpps": [math.nan]}, "finite"),
    ("compare", {"bpps": "0.1"}, "list"),
    ("compare", {"bpps": [0.1] * 1000}, "list"),
    ("compare", {"models": "hnerv"}, "list"),
    ("compare", {"crfs": [99]}, "between"),
    ("compare", {"codecs": ["vp9x"]}, "unknown"),
    ("fit", {"unknown_key": 1}, "unknown"),
]


@pytest.mark.parametrize("kind,params,words", HOSTILE, ids=[f"{k}-{json.dumps(p)[:40]}" for k, p, _ in HOSTILE])
def test_hostile_params_refused_before_queueing(client, cfg, tiny_clip_file, kind, params, words):
    r = _upload(client, tiny_clip_file, kind, params)  # json.dumps writes NaN / Infinity, as a hostile client would
    assert 400 <= r.status_code < 500, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and words in detail, detail
    assert str(cfg.data_dir) not in detail and "Traceback" not in detail
    assert client.get("/api/jobs").json() == []
    for folder in ("uploads", "incoming"):  # nothing of the refused upload is kept
        assert not list((cfg.data_dir / folder).glob("*")), folder


def test_resource_estimate_refuses_what_would_not_fit(tmp_path, tiny_clip_file):
    """Model size from bpp x pixels / bits, and memory against the per-job cap."""
    small = ServerConfig(data_dir=tmp_path / "d", limits=Limits(max_model_params=100_000, job_memory_bytes=256 << 20))
    client = TestClient(create_app(small))
    r = _upload(client, tiny_clip_file, "encode", {"model": "nerv", "bpp": 8.0, "bits": 2})  # 8 x 96x64x8 / 2 = 196k
    assert r.status_code == 413 and "parameters" in r.json()["detail"], r.text
    r = _upload(client, tiny_clip_file, "encode", {"model": "nerv", "resize": "1920x1080", "max_frames": 2})
    assert r.status_code == 413 and "GiB" in r.json()["detail"], r.text
    ok = _upload(client, tiny_clip_file, "encode", {"model": "nerv", "params": "20k", "max_frames": 4})
    assert ok.status_code == 201, ok.text
    job = ok.json()
    assert job["params"]["seconds"] > 0 and job["params"]["max_frames"] == 4  # every budget is bounded


def test_messages_name_the_users_file_not_a_server_path(client, cfg, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    r = _upload(client, fake, "encode", {"model": "nerv"}, name="holiday.mp4")
    detail = r.json()["detail"]
    assert r.status_code == 422 and "holiday.mp4" in detail and "not a readable video" in detail
    assert str(cfg.data_dir) not in detail and "uploads" not in detail and str(tmp_path) not in detail


def test_an_image_for_a_video_only_model_is_refused_at_submit(client, cfg, tmp_path, crop64):
    """The API checks the model against the input's kind before a job exists (as the app does)."""
    from video.media import save_image

    png = save_image(tmp_path / "x.png", crop64)
    r = _upload(client, png, "encode", {"model": "hnerv"}, name="holiday.png")
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "holiday.png is an image" in detail and "hnerv" in detail and "grid" in detail
    r = _upload(client, png, "compare", {"models": ["grid", "nerv"]}, name="holiday.png")
    assert r.status_code == 422 and "'nerv'" in r.json()["detail"], r.text
    assert client.get("/api/jobs").json() == []
    assert not list((cfg.data_dir / "uploads").glob("*"))


# ------------------------------------------------------------------ probing
def test_probe_reads_1k_fps_from_metadata(tmp_path):
    """ffmpeg prints '1k fps'; 100 frames at 1000 fps are 0.1 s, not 4 s at a fallback 25."""
    from video.ffmpeg_bin import ffmpeg_exe
    from video.media import ReadOptions, probe

    clip = tmp_path / "fast.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=1000", "-t", "0.1", "-pix_fmt", "yuv420p", str(clip)], check=True)
    quick = probe(clip, exact=False, timeout=30)
    assert quick.fps == 1000.0 and abs(quick.duration - 0.1) < 1e-6 and quick.frames == 100
    assert probe(clip).frames == 100  # the exact count agrees
    assert Limits(max_duration_s=1.0).check_media(clip, ReadOptions()) == (100, 32, 32)


def test_probe_timeout_refuses_instead_of_hanging(tmp_path):
    from video.media import probe

    fifo = tmp_path / "never.mp4"
    os.mkfifo(fifo)  # ffmpeg blocks opening it: no writer ever comes
    with pytest.raises(InrError, match="within 1 s"):
        probe(fifo, exact=False, timeout=1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatedLimits(Limits):
    """The real check, held at its start until the test opens the gate: a probe as slow as
    the test wants, without a slow file."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.entered, self.gate = threading.Event(), threading.Event()

    def check_media(self, path, read):
        self.entered.set()
        assert self.gate.wait(60)
        return super().check_media(path, read)


def test_api_answers_while_an_upload_is_being_probed(tmp_path, tiny_clip_file):
    import uvicorn

    limits = GatedLimits()
    cfg = ServerConfig(data_dir=tmp_path / "d", limits=limits)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=5.0) as http:  # a stalled loop would time these out
            _wait_for(lambda: _health(http), 20, "server start")
            result: dict = {}
            uploader = threading.Thread(target=lambda: result.setdefault("r", _upload(httpx.Client(base_url=base, timeout=60), tiny_clip_file, "encode", {"model": "nerv", "max_frames": 2})))
            uploader.start()
            assert limits.entered.wait(20)
            answers = [http.get(path) for _ in range(10) for path in ("/api/health", "/api/jobs")]
            assert all(a.status_code == 200 for a in answers)
            assert uploader.is_alive() and not limits.gate.is_set()  # all answered while the probe was blocked
            limits.gate.set()
            uploader.join(30)
            assert result["r"].status_code == 201, result["r"].text
    finally:
        limits.gate.set()
        server.should_exit = True
        thread.join(10)


def _health(http) -> bool:
    try:
        return http.get("/api/health").status_code == 200
    except httpx.TransportError:
        return False


# ------------------------------------------------------------------ workers
def _running_job(store: JobStore, job_id: str) -> dict:
    return _wait_for(lambda: (j := store.get(job_id))["status"] == "running" and j["worker"] and j, 120, f"job {job_id} running")


def test_killed_worker_fails_its_job_and_the_queue_continues(client, cfg, tiny_clip_file):
    pool = WorkerPool(cfg.db_path, cfg.data_dir, workers=1, tick_s=0.2)
    pool.start()
    try:
        store = JobStore(cfg.db_path)
        job = _upload(client, tiny_clip_file, "fit", {"model": "hnerv", "seconds": 120}).json()
        pid = _running_job(store, job["id"])["worker"]
        os.kill(pid, signal.SIGKILL)
        failed = _wait(client, job["id"], {"failed", "done", "cancelled"}, timeout=30)
        assert failed["status"] == "failed" and "worker running this job died" in failed["error"] and "SIGKILL" in failed["error"]
        nxt = _upload(client, tiny_clip_file, "encode", {"model": "nerv", "params": "20k", "epochs": 1, "max_frames": 2}).json()
        done = _wait(client, nxt["id"], {"done", "failed", "cancelled"}, timeout=240)
        assert done["status"] == "done", done["error"]
        assert pool.replaced == 1 and pid not in pool.pids()
        assert not list((cfg.data_dir / "uploads").iterdir())  # both inputs deleted with their jobs' end
    finally:
        pool.stop()


def test_cancel_and_lease_stop_a_job_that_never_reports(client, cfg, tiny_clip_file):
    """A frozen worker (SIGSTOP: no progress callback, no heartbeat, like a long decode or
    probe) is still cancellable within seconds, and without a cancel its lease runs out."""
    pool = WorkerPool(cfg.db_path, cfg.data_dir, workers=1, cancel_grace_s=1.0, lease_s=3.0, tick_s=0.2)
    pool.start()
    try:
        store = JobStore(cfg.db_path)
        job = _upload(client, tiny_clip_file, "fit", {"model": "hnerv", "seconds": 120}).json()
        pid = _running_job(store, job["id"])["worker"]
        os.kill(pid, signal.SIGSTOP)
        assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
        final = _wait(client, job["id"], {"cancelled", "failed", "done"}, timeout=30)
        assert final["status"] == "cancelled", final
        job2 = _upload(client, tiny_clip_file, "fit", {"model": "hnerv", "seconds": 120}).json()
        pid2 = _running_job(store, job2["id"])["worker"]
        assert pid2 != pid
        os.kill(pid2, signal.SIGSTOP)
        final2 = _wait(client, job2["id"], {"cancelled", "failed", "done"}, timeout=30)
        assert final2["status"] == "failed" and "stopped responding" in final2["error"]
    finally:
        pool.stop()


def test_memory_cap_turns_an_overrun_into_a_failed_job(cfg, tiny_clip_file):
    """Queued directly (submit would refuse it): a 300 M-parameter SIREN under a 1.5 GiB cap."""
    store = JobStore(cfg.db_path)
    job = store.create("fit", {"model": "siren", "params": "300M", "steps": 2, "seconds": 60}, str(tiny_clip_file), "tiny.mkv")
    pool = WorkerPool(cfg.db_path, cfg.data_dir, workers=1, device="cpu", memory_cap=3 << 29, tick_s=0.2)
    pool.start()
    try:
        final = _wait_for(lambda: (j := store.get(job["id"]))["status"] in ("done", "failed", "cancelled") and j, 120, "the job to end")
        assert final["status"] == "failed" and "ran out of memory" in final["error"], final["error"]
        assert "Traceback" not in final["error"]
    finally:
        pool.stop()


# ------------------------------------------------------------------ the server process
def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie runs nothing; its reaper is whoever adopted it


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_server_death_leaves_no_orphans_and_no_running_job(tmp_path, tiny_clip_file, sig):
    data, port = tmp_path / "d", _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "ui.cli", "serve", "--port", str(port), "--data-dir", str(data)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:  # a loaded machine: the test is not about speed
            _wait_for(lambda: _health(http) or server.poll() is not None, 60, "server start")
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            job = _upload(http, tiny_clip_file, "fit", {"model": "hnerv", "seconds": 120}).json()
            _wait(http, job["id"], {"running"}, timeout=120)
            procs = _descendants(server.pid)
            assert procs  # at least the worker
            server.send_signal(sig)
            server.wait(30)
        _wait_for(lambda: not any(_alive(p) for p in procs), 15, f"workers {procs} to exit")
        status = JobStore(data / "jobs.sqlite").get(job["id"])["status"]
        if sig == signal.SIGKILL:  # nothing runs any more; the next start marks it interrupted
            assert JobStore(data / "jobs.sqlite").recover() == 1
        else:
            assert status == "failed", status
            assert "shut down" in JobStore(data / "jobs.sqlite").get(job["id"])["error"]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)


# ------------------------------------------------------------------ retention and serving
def test_retention_and_served_paths(cfg, tmp_path):
    store = JobStore(cfg.db_path)
    uploads = cfg.data_dir / "uploads"
    uploads.mkdir(parents=True)
    done_in, queued_in, orphan = uploads / "a.mp4", uploads / "b.mp4", uploads / "c.mp4"
    for f in (done_in, queued_in, orphan):
        f.write_bytes(b"x")
    done = store.create("fit", {}, str(done_in), "a.mp4")
    store.claim_next(1)
    store.finish(done["id"], "done", artifacts=["out.txt"])
    (cfg.data_dir / "jobs" / done["id"]).mkdir(parents=True)
    (cfg.data_dir / "jobs" / done["id"] / "out.txt").write_text("artifact")
    queued = store.create("fit", {}, str(queued_in), "b.mp4")
    old_preview = cfg.data_dir / "previews" / "p1"
    old_preview.mkdir(parents=True)
    new_preview = cfg.data_dir / "previews" / "p2"
    new_preview.mkdir()
    long_ago = time.time() - 7200
    for p in (old_preview, orphan):
        os.utime(p, (long_ago, long_ago))
    removed = sweep(store, cfg.data_dir, Retention(preview_max_age_s=3600, incoming_max_age_s=3600))
    assert not done_in.exists() and not orphan.exists() and queued_in.exists()  # the queued job still needs its input
    assert not old_preview.exists() and new_preview.exists()
    assert removed["uploads"] == 2 and removed["previews"] >= 1
    assert (cfg.data_dir / "jobs" / done["id"] / "out.txt").exists()  # jobs are kept unless an age is set
    sweep(store, cfg.data_dir, Retention(job_max_age_s=0.0), now=time.time() + 1)
    assert store.get(done["id"]) is None and not (cfg.data_dir / "jobs" / done["id"]).exists()
    assert store.get(queued["id"]) is not None
    allowed = served_paths(cfg.data_dir)
    db = str(cfg.db_path)
    assert not any(db.startswith(p + os.sep) or db == p for p in allowed) and str(cfg.data_dir) not in allowed


def test_delete_job_removes_its_files(client, cfg, tiny_clip_file):
    job = _upload(client, tiny_clip_file, "encode", {"model": "nerv", "max_frames": 2}).json()
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 409  # queued: cancel first
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert not list((cfg.data_dir / "uploads").iterdir())  # a cancelled queued job drops its input at once
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404


# ------------------------------------------------------------------ batch
def test_batch_rerun_removes_leftover_part_files(tmp_path):
    from video.batch import run_batch

    src, out = tmp_path / "in", tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    src.mkdir()
    stale = [out / "sub" / ".clip.k2j4h1x9.part.inr", out / ".manifest.abcd1234.part.csv"]
    keep = [out / ".notes", out / "sub" / "clip.part.inr"]
    for f in stale + keep:
        f.write_text("x")
    summary = run_batch(src, out, make_job=lambda a, b: pytest.fail("no videos to plan"))
    assert summary["files"] == 0
    assert not any(f.exists() for f in stale) and all(f.exists() for f in keep)
