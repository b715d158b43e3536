"""One options module (inr.options): every front end gets the same defaults and the same checks,
and the bugs that came from four separate builders stay fixed."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from inr.errors import InrError
from inr.options import DEFAULT_IMAGE_STEPS, DEFAULT_VIDEO_EPOCHS, check_loss, default_budget, fit_options
from inr.signals import Signal
from inr.tasks import CoordTask


def _image_signal(crop64) -> Signal:
    return Signal(crop64.float() / 255, "image")


def test_default_budget_is_one_rule_for_every_kind():
    assert fit_options("siren", "image").fit.steps == DEFAULT_IMAGE_STEPS
    video = fit_options("nerv", "video").fit
    assert (video.epochs, video.steps, video.seconds) == (DEFAULT_VIDEO_EPOCHS, None, None)
    assert default_budget(None, None, 5.0, "video") == {"steps": None, "epochs": None, "seconds": 5.0}  # a given budget is kept
    assert fit_options("auto", "image").model != "auto"  # resolved in the one place


def test_compare_and_server_take_the_shared_default():
    from server.jobs import bound_budget
    from server.limits import Limits
    from video.compare import CompareOptions

    opts = CompareOptions(models=None, bpps=[0.1])
    opts.validate("image")
    assert (opts.steps, opts.epochs) == (DEFAULT_IMAGE_STEPS, None)
    limits = Limits()
    params: dict = {}
    bound_budget("fit", params, "video", limits)
    assert params == {"epochs": DEFAULT_VIDEO_EPOCHS, "seconds": limits.max_seconds}  # the default, capped in time
    params = {"steps": 5}
    bound_budget("encode", params, "image", limits)
    assert params == {"steps": 5, "seconds": limits.max_seconds}


def test_loss_is_checked_against_the_family():
    check_loss("nerv", "l1_ssim")  # frame models train with NeRV's loss
    check_loss("siren", "l1")
    for model, loss in (("siren", "l1_ssim"), ("hashgrid", "l1_ssim"), ("grid", "l1")):
        with pytest.raises(InrError, match=f"does not train with loss '{loss}'"):
            check_loss(model, loss)
    with pytest.raises(InrError, match="unknown loss"):
        fit_options("nerv", "video", loss="ssim")


def test_coordinate_task_trains_the_loss_it_is_given(crop64):
    """Regression: any loss other than l2 used to become plain L1 silently."""
    signal = _image_signal(crop64)
    with pytest.raises(InrError, match="l2 or l1"):
        CoordTask(signal, torch.device("cpu"), loss="l1_ssim")
    task = CoordTask(signal, torch.device("cpu"), batch_size=256, loss="l1")
    model = torch.nn.Linear(2, 3)
    gen = torch.Generator().manual_seed(0)
    loss, mse = task.batch_loss(model, gen, 0)
    coords, values = task.sampler.sample(torch.Generator().manual_seed(0))
    pred = model(coords)
    assert torch.allclose(loss, F.l1_loss(pred, values)) and torch.allclose(mse, F.mse_loss(pred, values))
    assert loss.grad_fn is not None and mse.grad_fn is None  # the reported MSE builds no graph
    task = CoordTask(signal, torch.device("cpu"), batch_size=256, loss="l2")
    loss, mse = task.batch_loss(model, torch.Generator().manual_seed(0), 0)
    assert torch.equal(loss.detach(), mse) and torch.allclose(loss, F.mse_loss(pred, values)) and mse.grad_fn is None


def test_batch_leaves_coordinate_batches_to_the_family(tmp_path, monkeypatch, tiny_clip):
    """Regression: `inr batch` trained coordinate models on video with batch_size=2."""
    import video.gop_encode
    from inr.pipeline import build_model
    from inr.models import get_spec
    from video.batch import BatchJob, encode_job

    seen = {}

    def fake_encode(src, dst, opts, *args, **kwargs):
        seen["opts"] = opts
        return {"bytes": 1, "bpp": 0.1, "psnr": 20.0, "msssim": 0.9}

    monkeypatch.setattr(video.gop_encode, "encode_video", fake_encode)
    row = encode_job(BatchJob("clip.mp4", str(tmp_path / "c.inr"), "siren", None, "2k", None, None, device="cpu"))
    assert row["status"] == "done", row
    opts = seen["opts"]
    assert opts.batch_size is None and opts.fit.epochs == DEFAULT_VIDEO_EPOCHS
    signal = Signal(tiny_clip.float() / 255, "video")
    _, model = build_model(get_spec("siren"), signal, opts.params, None, 0)
    task = model.make_task(signal, torch.device("cpu"), opts)
    assert task.sampler.batch_size is None or task.sampler.batch_size >= 1024


def test_build_model_refuses_a_signal_through_the_one_check(crop64):
    from inr.models import get_spec
    from inr.pipeline import build_model

    with pytest.raises(InrError, match="is an image, which model 'nerv' does not handle"):
        build_model(get_spec("nerv"), _image_signal(crop64), None, None, 0)
