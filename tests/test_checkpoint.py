"""Checkpoints resume exactly: the loss of the next step equals the uninterrupted fit's."""
from __future__ import annotations

import pytest
import torch

from inr import checkpoint as ckpt
from inr.fit import FitConfig, Trainer
from inr.pipeline import FitOptions, build_model
from inr.models import get_spec
from inr.signals import image_signal, video_signal


def _trainer(signal, name, overrides, batch, steps, model=None):
    spec = get_spec(name)
    cfg, built = build_model(spec, signal, None, overrides, seed=0)
    model = built if model is None else model
    opts = FitOptions(model=name, overrides=overrides, batch_size=batch, fit=FitConfig(steps=steps, seed=0))
    task = model.make_task(signal, torch.device("cpu"), opts)
    return spec, cfg, model, Trainer(model, task, opts.fit, spec.optim, torch.device("cpu"))


@pytest.mark.parametrize(
    "name,overrides,batch,kind",
    [("hashgrid", {"table_size": 2**9, "n_levels": 4, "hidden": 16}, 512, "image"), ("hnerv", {"fc_dim": 16}, 2, "video")],
)
def test_resume_gives_identical_next_step_loss(tmp_path, crop64, tiny_clip, name, overrides, batch, kind):
    signal = image_signal(crop64) if kind == "image" else video_signal(tiny_clip[:4])
    spec, cfg, model, tr = _trainer(signal, name, overrides, batch, steps=12)
    for _ in range(5):
        tr.step_once()
    ckpt.save(tmp_path / "ck", spec, cfg, model, {"signal": kind}, tr)
    expected = tr.step_once()  # step 6, uninterrupted

    spec2, cfg2, model2, header = ckpt.load(tmp_path / "ck")
    _, _, _, tr2 = _trainer(signal, name, overrides, batch, steps=12, model=model2)  # same speed plan and optimizer
    tr2.load_training_state(*ckpt.load_training(tmp_path / "ck"))
    assert tr2.state.step == 5
    resumed = tr2.step_once()
    assert resumed == expected
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_rejects_garbage(tmp_path):
    from inr.errors import InrError

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InrError):
        ckpt.load(tmp_path)
