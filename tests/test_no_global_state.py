"""Library calls leave the process as they found it: the caller's RNG stream, the umask and
torch's thread count."""
from __future__ import annotations

import os

import torch

from inr.export.codec import decode_model, encode_model
from inr.models import get_spec
from inr.pipeline import build_model
from inr.signals import image_signal


def test_build_and_decode_do_not_reseed_the_callers_rng(crop64):
    spec = get_spec("siren")
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    cfg, model = build_model(spec, image_signal(crop64[:16, :16]), None, {"hidden": 8, "layers": 1}, seed=0)
    data = encode_model(spec, cfg, {n: p.detach() for n, p in model.stored_tensors().items()}, {"kind": "image", "shape": [16, 16, 3]}, 8)
    decode_model(data)
    assert torch.equal(torch.rand(3), expected)


def test_reading_the_umask_leaves_it_alone(tmp_path):
    from video.media import _umask, atomic_path

    old = os.umask(0o027)
    try:
        assert _umask() == 0o027
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"x")
        assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o640
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)


def test_a_batch_job_restores_the_thread_count(tmp_path):
    from video.batch import BatchJob, encode_job

    before = torch.get_num_threads()
    other = 1 if before > 1 else 2
    job = BatchJob(str(tmp_path / "missing.mp4"), str(tmp_path / "out.inr"), "siren", None, None, None, 1.0, threads=other)
    row = encode_job(job)
    assert row["status"] == "failed" and torch.get_num_threads() == before
