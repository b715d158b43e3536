"""Checkpoints resume exactly: a fit interrupted and resumed through `fit_signal(resume=True)`
ends where the uninterrupted fit ends."""
from __future__ import annotations

import pytest
import torch

from inr import checkpoint as ckpt
from inr.fit import FitConfig
from inr.pipeline import FitOptions, fit_signal
from inr.signals import image_signal, video_signal


CPU = torch.device("cpu")


class StopAt:
    """A progress callback that presses Ctrl-C after `step`: the trainer checkpoints, then
    lets the interrupt through, as it does for a user."""

    def __init__(self, step: int):
        self.step = step

    def __call__(self, state) -> None:
        if state.step == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    "name,overrides,batch,kind",
    [("hashgrid", {"table_size": 2**9, "n_levels": 4, "hidden": 16}, 512, "image"), ("hnerv", {"fc_dim": 16}, 2, "video")],
)
def test_interrupted_fit_resumes_to_the_uninterrupted_result(tmp_path, crop64, tiny_clip, name, overrides, batch, kind):
    """Ctrl-C at step 3 of 6, then `fit_signal(resume=True)`: the same steps, batches, learning
    rates and optimizer moments as a fit that was never stopped, so the same weights, bit for bit."""
    signal = image_signal(crop64) if kind == "image" else video_signal(tiny_clip[:4])
    opts = FitOptions(model=name, overrides=overrides, batch_size=batch, fit=FitConfig(steps=6, seed=0))
    straight = fit_signal(signal, opts, CPU, checkpoint_dir=tmp_path / "straight")

    with pytest.raises(KeyboardInterrupt):
        fit_signal(signal, opts, CPU, checkpoint_dir=tmp_path / "ck", callback=StopAt(3))
    assert ckpt.load_training(tmp_path / "ck")[1]["state"]["step"] == 3  # the checkpoint written on Ctrl-C
    seen: list[int] = []
    resumed = fit_signal(signal, opts, CPU, checkpoint_dir=tmp_path / "ck", resume=True, callback=lambda st: seen.append(st.step))

    assert seen == [4, 5, 6] and resumed.state.step == 6  # continued, not restarted
    losses = {h["step"]: h["loss"] for h in resumed.state.history}
    assert losses[6] == {h["step"]: h["loss"] for h in straight.state.history}[6]
    for (n, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), n
    assert torch.equal(straight.reconstruction, resumed.reconstruction)


def test_checkpoint_rejects_garbage(tmp_path):
    from inr.errors import InrError

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InrError):
        ckpt.load(tmp_path)


def test_a_checkpoint_from_another_parameter_grouping_is_refused_in_one_line(tmp_path, tiny_clip):
    """A checkpoint whose optimizer groups differ from this version's (a family whose
    learning-rate scales changed since it was written) ends in an InrError, not a torch
    traceback halfway through loading."""
    import json

    from inr.errors import InrError

    signal = video_signal(tiny_clip[:4])
    opts = FitOptions(model="hnerv", overrides={"fc_dim": 16}, batch_size=2, fit=FitConfig(steps=6, seed=0))
    with pytest.raises(KeyboardInterrupt):
        fit_signal(signal, opts, CPU, checkpoint_dir=tmp_path / "ck", callback=StopAt(3))
    config = tmp_path / "ck" / "config.json"
    header = json.loads(config.read_text())
    groups = header["training"]["optimizer"]["param_groups"]
    merged = {**groups[0], "params": [p for g in groups for p in g["params"]]}
    extra = {**groups[0], "params": []}
    header["training"]["optimizer"]["param_groups"] = [merged, extra] if len(groups) == 1 else [merged]
    config.write_text(json.dumps(header))
    with pytest.raises(InrError, match="parameter groups"):
        fit_signal(signal, opts, CPU, checkpoint_dir=tmp_path / "ck", resume=True)
