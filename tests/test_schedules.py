"""Learning-rate schedules: the curve itself, each family's paper schedule reaching the
optimizer, and the CLI flag."""
from __future__ import annotations

import pytest
import torch

from inr.errors import InrError
from inr.fit import FitConfig, Trainer
from inr.models import all_specs, get_spec
from inr.models.registry import Schedule
from inr.pipeline import FitOptions, build_model
from inr.signals import video_signal
from tests.test_cli import run_cli, small_png  # noqa: F401  (fixture)


def test_warm_up_then_cosine_to_the_floor():
    s = Schedule(warmup=0.2, start=0.1, floor=0.05)
    assert s.factor(0.0) == pytest.approx(0.1)
    assert s.factor(0.1) == pytest.approx(0.55)
    assert s.factor(0.2) == pytest.approx(1.0)
    assert s.factor(0.6) == pytest.approx(0.05 + 0.95 * 0.5)
    assert s.factor(1.0) == pytest.approx(0.05)
    assert Schedule(warmup=0.0, decay="constant").factor(0.9) == 1.0


def test_every_family_has_both_schedules():
    for spec in all_specs():
        assert isinstance(spec.optim.schedule("fast"), Schedule)
        assert isinstance(spec.optim.schedule("paper"), Schedule)
    with pytest.raises(InrError):
        get_spec("nerv").optim.schedule("slow")
    with pytest.raises(InrError, match="--schedule"):
        FitConfig(steps=1, schedule="slow").validate()


def test_nerv_paper_schedule_reaches_the_optimizer(tiny_clip):
    """NeRV's official training: lr 5e-4, Adam beta1 0.5, warm-up from 0.1x over 20 %."""
    signal = video_signal(tiny_clip[:4, :32, :48])
    spec = get_spec("nerv")
    _, model = build_model(spec, signal, None, {"fc_dim": 8}, 0)
    fit = FitConfig(steps=10, schedule="paper", amp=False, fused_adam=False)
    task = model.make_task(signal, torch.device("cpu"), FitOptions(model="nerv", fit=fit))
    trainer = Trainer(model, task, fit, spec.optim, torch.device("cpu"))
    group = trainer.optimizer.param_groups[0]
    assert group["betas"] == (0.5, 0.999)
    trainer.step_once()
    assert trainer.state.lr == pytest.approx(5e-4 * 0.1)
    trainer.step_once()  # progress 0.1 of 10 steps: halfway through the warm-up
    assert trainer.state.lr == pytest.approx(5e-4 * 0.55)


def _grid_trainer(tiny_clip, steps: int):
    """(spec, Trainer, {id(parameter): name}) of a grid on a tiny clip, for `steps` steps."""
    signal = video_signal(tiny_clip[:4, :32, :48])
    spec = get_spec("grid")
    _, model = build_model(spec, signal, None, {}, 0)
    fit = FitConfig(steps=steps, amp=False, fused_adam=False)
    task = model.make_task(signal, torch.device("cpu"), FitOptions(model="grid", fit=fit))
    trainer = Trainer(model, task, fit, spec.optim, torch.device("cpu"))
    return spec, trainer, {id(p): n for n, p in model.named_parameters()}


def test_the_grids_entropy_models_keep_the_peak_rate(tiny_clip):
    """`steady` groups (the grid's context models) follow the warm-up, then stay at the peak
    while the rest decays; every parameter is in exactly one group."""
    s = Schedule(warmup=0.2, start=0.1)
    assert s.steady_factor(0.1) == pytest.approx(s.factor(0.1))
    assert s.steady_factor(0.9) == 1.0 and s.factor(0.9) < 0.1
    spec, trainer, names = _grid_trainer(tiny_clip, steps=10)
    groups = trainer.optimizer.param_groups
    steady = {names[id(p)] for g in groups if g["steady"] for p in g["params"]}
    assert steady and all(n.startswith(("context.", "motion_context.", "residual_context.")) for n in steady)
    assert sum(len(g["params"]) for g in groups) == len(names)
    trainer.state.step = 9  # progress 0.9: the rest is near the end of its cosine
    trainer.step_once()
    for g in groups:
        want = spec.optim.lr * g["lr_scale"] * (1.0 if g["steady"] else spec.optim.fast.factor(0.9))
        assert g["lr"] == pytest.approx(want)


def test_the_grids_latents_slow_down_in_a_long_straight_through_phase(tiny_clip):
    """The straight-through phase gives the latents ROUNDING_STEPS steps' worth of their rate,
    however long it is (a long one let the zeros drift across the rounding threshold); the
    noise phase and every other parameter keep theirs."""
    from inr.export.grid_codec import ROUNDING_STEPS

    spec, trainer, names = _grid_trainer(tiny_clip, steps=1000)
    task, groups = trainer.task, trainer.optimizer.param_groups
    late = {names[id(p)] for g in groups if g["late"] for p in g["params"]}
    assert late == {n for n in names.values() if n.startswith(("latents.", "motion_latents", "residual_latents"))}

    def expected(g, p, factor):
        base = spec.optim.lr * g["lr_scale"] * (spec.optim.fast.steady_factor(p) if g["steady"] else spec.optim.fast.factor(p))
        return base * (factor if g["late"] else 1.0)

    trainer.state.step = 100  # noise phase
    trainer.step_once()
    for g in groups:
        assert g["lr"] == pytest.approx(expected(g, 0.1, 1.0))
    trainer.state.step = 800  # the straight-through phase: 250 steps of it in all
    trainer.step_once()
    factor = ROUNDING_STEPS / (1000 * (1 - task.target.noise_fraction))
    assert task.quant_mode() == "ste" and factor < 1
    assert task.late_lr_factor() == pytest.approx(factor)
    for g in groups:
        assert g["lr"] == pytest.approx(expected(g, 0.8, factor))


def test_cli_schedule_flag(tmp_path, small_png):
    ok = run_cli("fit", str(small_png), "-o", str(tmp_path / "a.pt"), "--model", "siren", "--steps", "5", "--schedule", "paper")
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("fit", str(small_png), "-o", str(tmp_path / "b.pt"), "--model", "siren", "--steps", "5", "--schedule", "slow")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
