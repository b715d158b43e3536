"""`inr batch --ray`: the same jobs as Ray tasks on a local Ray instance.

Ray is an optional extra (`pip install 'inr-codec[ray]'`); this test runs when it is
installed (the CI installs it) and is skipped otherwise.
"""
from __future__ import annotations

import csv

import pytest

from video.media import write_video

pytestmark = pytest.mark.ray


def test_batch_on_local_ray_matches_local_manifest(tmp_path, tiny_clip):
    pytest.importorskip("ray")
    from video.batch import MANIFEST_FIELDS, BatchJob, run_batch

    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "a.mkv", tiny_clip[:4], lossless=True)
    write_video(src / "b.mkv", tiny_clip[4:8], lossless=True)
    (src / "bad.mp4").write_text("not a video")

    def job(s: str, d: str) -> BatchJob:
        return BatchJob(s, d, "nerv", None, "30k", 2, None, max_frames=4, threads=1)

    summaries = {}
    for mode in ("local", "ray"):
        out = tmp_path / mode
        summaries[mode] = run_batch(src, out, job, ray_address="local" if mode == "ray" else None)
        with (out / "manifest.csv").open() as f:
            reader = csv.DictReader(f)
            assert reader.fieldnames == MANIFEST_FIELDS
            rows = {r["input"]: r for r in reader}
        assert {k: r["status"] for k, r in rows.items()} == {
            str(src / "a.mkv"): "done", str(src / "b.mkv"): "done", str(src / "bad.mp4"): "failed",
        }
        assert (out / "a.inr").is_file() and (out / "b.inr").is_file()
    assert summaries["local"]["done"] == summaries["ray"]["done"] == 2
    import ray

    ray.shutdown()
