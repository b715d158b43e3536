"""Job service through its HTTP API: create, progress, cancel, restart recovery, limits, token."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inr.errors import InrError
from inr.export import gop as gopfile
from server.api import ServerConfig, check_bind, create_app
from server.limits import Limits
from server.store import JobStore
from server.worker import WorkerPool


@pytest.fixture()
def cfg(tmp_path) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "data", limits=Limits(max_upload_bytes=2 << 20))


@pytest.fixture()
def client(cfg) -> TestClient:
    return TestClient(create_app(cfg))


@pytest.fixture()
def workers(cfg):
    pool = WorkerPool(cfg.db_path, cfg.data_dir, workers=1)
    pool.start()
    yield pool
    pool.stop()


def _upload(client, path: Path, kind: str, params: dict, name: str | None = None, headers=None):
    with path.open("rb") as f:
        return client.post("/api/jobs", data={"kind": kind, "params": json.dumps(params)}, files={"file": (name or path.name, f)}, headers=headers)


def _wait_for(client, job_id: str, ready, what: str, timeout: float = 240, headers=None) -> dict:
    """Poll the job until `ready(job)`. The timeout only keeps a broken job from hanging the
    suite: it is generous, and no test asserts on how long anything took."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if ready(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} never {what} in {timeout} s: {job}")


def _wait(client, job_id: str, statuses: set[str], timeout: float = 240, headers=None) -> dict:
    return _wait_for(client, job_id, lambda job: job["status"] in statuses, f"reached {statuses}", timeout, headers)


def test_encode_job_end_to_end(client, workers, tiny_clip_file):
    r = _upload(client, tiny_clip_file, "encode", {"model": "nerv", "params": "30k", "epochs": 4, "max_frames": 4})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and not {"input", "worker", "heartbeat"} & set(job)  # no server internals
    assert job["id"] in [j["id"] for j in client.get("/api/jobs").json()]
    done = _wait(client, job["id"], {"done", "failed"})
    assert done["status"] == "done", done["error"]
    names = {a["name"] for a in done["artifacts"]}
    assert names == {"output.inr", "output.inr.json", "decoded.mp4", "original.mp4", "h264.mp4", "h264.json"}
    h264 = client.get(f"/api/jobs/{job['id']}/artifacts/h264.json").json()
    assert 0 <= h264["crf"] <= 51 and h264["bytes"] > 0 and h264["psnr"] > 0
    blob = client.get(f"/api/jobs/{job['id']}/artifacts/output.inr")
    report = client.get(f"/api/jobs/{job['id']}/artifacts/output.inr.json").json()
    assert blob.status_code == 200 and len(blob.content) == report["bytes"] > 0
    assert client.get(f"/api/jobs/{job['id']}/artifacts/../../jobs.sqlite").status_code == 404
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 409


def test_encode_job_with_gop_makes_that_many_groups_of_frames(client, workers, clip12):
    for bad, says in [({"gop": 0}, "gop must be between 1"), ({"gop": "4"}, "gop must be an integer"), ({"gop": 2.5}, "gop must be an integer"),
                      ({"warm_start": "no"}, "warm_start must be true or false"), ({"scene_cut": 1}, "scene_cut must be true or false")]:
        r = _upload(client, clip12, "encode", {"model": "siren", **bad})
        assert r.status_code == 422 and says in r.json()["detail"] and "\n" not in r.json()["detail"], r.text
    r = _upload(client, clip12, "fit", {"model": "siren", "gop": 4})
    assert r.status_code == 422 and "unknown parameter(s) for fit: gop" in r.json()["detail"]
    r = _upload(client, clip12, "encode", {"model": "siren", "params": "6k", "steps": 2, "gop": 4, "warm_start": False, "scene_cut": True})
    assert r.status_code == 201, r.text
    done = _wait(client, r.json()["id"], {"done", "failed"})
    assert done["status"] == "done", done["error"]
    index = gopfile.open_index(client.get(f"/api/jobs/{done['id']}/artifacts/output.inr").content)
    assert index.version == 2 and [(g.start, g.frames) for g in index.gops] == [(0, 4), (4, 4), (8, 4)]
    assert index.header["warm_start"] is False
    report = client.get(f"/api/jobs/{done['id']}/artifacts/output.inr.json").json()
    assert [g["frames"] for g in report["gops"]] == [4, 4, 4]


def test_cancel_running_fit(client, cfg, tiny_clip_file):
    """The fit itself sees the cancel flag and stops: the supervisor's forced stop (after
    `cancel_grace_s`) is pushed out of reach, so only the cooperative path can cancel it."""
    pool = WorkerPool(cfg.db_path, cfg.data_dir, workers=1, cancel_grace_s=600)
    pool.start()
    try:
        job = _upload(client, tiny_clip_file, "fit", {"model": "hnerv", "seconds": 120}).json()
        running = _wait_for(client, job["id"], lambda j: j["status"] == "running" and j["progress"].get("step"), "started training")
        assert running["progress"]["step"] > 0 and "psnr" in running["progress"] and "eta" in running["progress"]
        assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
        final = _wait(client, job["id"], {"cancelled", "done", "failed"})
    finally:
        pool.stop()
    assert final["status"] == "cancelled" and final["error"] == "cancelled by request", final  # not "(stopped)"


def test_restart_marks_running_jobs_interrupted(cfg, tiny_clip_file):
    store = JobStore(cfg.db_path)
    job = store.create("fit", {"model": "siren"}, str(tiny_clip_file), "x.mkv")
    assert store.claim_next()["id"] == job["id"]  # now "running", and its server dies
    fresh = JobStore(cfg.db_path)
    assert fresh.recover() == 1
    after = fresh.get(job["id"])
    assert after["status"] == "failed" and "interrupted" in after["error"]
    assert fresh.claim_next() is None


def test_bad_uploads_get_clear_4xx(client, tmp_path, cfg):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, renamed")
    r = _upload(client, fake, "encode", {"model": "nerv"})
    assert r.status_code == 422 and "not a readable video" in r.json()["detail"]
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (3 << 20))
    r = _upload(client, big, "encode", {"model": "nerv"})
    assert r.status_code == 413 and "MiB" in r.json()["detail"]
    r = _upload(client, fake, "encode", {"model": "nerv"}, name="evil.exe")
    assert r.status_code == 415
    r = _upload(client, fake, "encode", {"model": "nope"})
    assert r.status_code == 422 and "unknown model" in r.json()["detail"]
    r = _upload(client, fake, "encode", {"epochs": -1})
    assert r.status_code == 422
    bad_inr = tmp_path / "bad.inr"
    bad_inr.write_bytes(b"INRC" + bytes(60))
    r = _upload(client, bad_inr, "decode", {})
    assert r.status_code == 422 and "inr" in r.json()["detail"].lower()
    assert not any((cfg.data_dir / "uploads").iterdir())  # rejected uploads are not kept
    assert client.get("/api/jobs").json() == []
    assert client.get("/api/health").status_code == 200  # still serving


def test_limits_on_pixels_and_frames(tmp_path, tiny_clip_file):
    cfg = ServerConfig(data_dir=tmp_path / "d", limits=Limits(max_pixel_frames=96 * 64 * 4))
    client = TestClient(create_app(cfg))
    r = _upload(client, tiny_clip_file, "encode", {"model": "nerv"})
    assert r.status_code == 413 and "max_frames" in r.json()["detail"]
    assert _upload(client, tiny_clip_file, "encode", {"model": "nerv", "max_frames": 4}).status_code == 201


def test_an_encode_with_gop_is_sized_by_one_group_of_frames(tmp_path, clip12):
    """12 frames of 48x32: about 1.3 MB of estimated memory whole, under 1 MB in groups of 4."""
    client = TestClient(create_app(ServerConfig(data_dir=tmp_path / "d", limits=Limits(job_memory_bytes=1_100_000))))
    r = _upload(client, clip12, "encode", {"model": "siren", "params": "6k"})
    assert r.status_code == 413 and "memory" in r.json()["detail"]
    assert _upload(client, clip12, "encode", {"model": "siren", "params": "6k", "gop": 4}).status_code == 201


def test_token_required_everywhere(tmp_path, tiny_clip_file):
    cfg = ServerConfig(data_dir=tmp_path / "d", token="s3cret")
    client = TestClient(create_app(cfg))
    for path in ("/api/jobs", "/api/health", "/openapi.json"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = {"Authorization": "Bearer s3cret"}
    assert client.get("/api/jobs", headers=ok).status_code == 200
    assert "/api/jobs" in client.get("/openapi.json", headers=ok).json()["paths"]


def test_refuses_public_bind_without_token():
    with pytest.raises(InrError, match="without a token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "t")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
