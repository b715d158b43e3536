"""From a signal to a fitted model: choose and size the model, fit it, score it.

Front ends (CLI, server, UI) call these functions; media I/O stays outside `inr`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from inr import checkpoint as ckpt
from inr.errors import InrError
from inr.fit import FitState, Trainer
from inr.models import ModelSpec, count_params, get_spec, size_to_budget
from inr.models.auto import check_handles
from inr.models.sizing import stored_params
from inr.options import FitOptions
from inr.signals import Signal


def base_config(spec: ModelSpec, signal: Signal, overrides: dict | None, rate_bits: float | None = None):
    """The family's config for `signal` before any parameter budget: adapted to the signal,
    sized to a file of `rate_bits` for a rate-aware family, with the user's overrides."""
    check_handles(spec.name, signal.kind, "the signal")
    cfg = spec.adapt(spec.config_cls(), signal)
    if spec.rate_aware and rate_bits is not None:
        cfg = spec.model_cls.config_for_rate(cfg, rate_bits)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def build_model(spec: ModelSpec, signal: Signal, params: int | None, overrides: dict | None, seed: int, rate_bits: float | None = None):
    """A fresh model for `signal`: sized to `params` stored parameters, or, for a rate-aware
    family, to a file of `rate_bits` (default: `params` 8-bit parameters, see rate_target)."""
    if spec.rate_aware and rate_bits is None and params:
        rate_bits = 8.0 * params
    cfg = base_config(spec, signal, overrides, rate_bits)
    if params is not None and not spec.rate_aware:  # a rate-aware family's size is its rate: see rate_target()
        cfg = size_to_budget(spec, cfg, params)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(seed)
        model = spec.model_cls(cfg)
    model.start_from(signal)
    return cfg, model


def copy_matching(model: nn.Module, weights: dict[str, torch.Tensor]) -> int:
    """Copy the `weights` whose name and shape match one of the model's parameters; returns
    how many were copied. A neighbour's per-item or side tensors (embeddings, latent grids:
    sized by its frames) are not in `stored_weights()` and keep the model's own start."""
    params = dict(model.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, value in weights.items():
            if name in params and params[name].shape == value.shape:
                params[name].copy_(value)
                copied += 1
    return copied


def rate_target(opts: FitOptions, signal: Signal, bpp: float | None, lam: float | None):
    """What a rate-aware family aims at. A parameter budget (what the fit-then-compress
    families are sized by, and what the app's size slider sets) becomes the bpp of a file of
    that many 8-bit parameters, so every front end's size means the same thing for every family."""
    from inr.export.grid_codec import RateTarget

    if bpp is None and lam is None and opts.params:
        bpp = opts.params * 8 / signal.num_samples
    kwargs = {"frames_per_step": opts.batch_size} if opts.batch_size else {}
    return RateTarget(lam=lam, bpp=bpp, **kwargs)


@dataclass
class FitOutcome:
    spec: ModelSpec
    config: object
    model: nn.Module
    state: FitState
    metrics: dict  # evaluate() output without the reconstruction
    reconstruction: torch.Tensor  # (*spatial, C) on CPU


def fit_signal(
    signal: Signal,
    opts: FitOptions,
    device: torch.device,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    callback: Callable[[FitState], None] | None = None,
    full_metrics: bool = True,
) -> FitOutcome:
    """Fit `opts.model` to `signal`; with `resume`, continue from `checkpoint_dir`.
    `full_metrics=False` scores the fit by PSNR alone (`FitTask.evaluate`)."""
    spec = get_spec(opts.model)
    training = None
    if resume:
        if checkpoint_dir is None or not (Path(checkpoint_dir) / "config.json").is_file():
            raise InrError(f"nothing to resume in {checkpoint_dir}")
        rspec, cfg, model, header = ckpt.load(checkpoint_dir, device)
        if rspec.name != spec.name:
            raise InrError(f"checkpoint holds model '{rspec.name}', not '{spec.name}'")
        training = ckpt.load_training(checkpoint_dir)
    else:
        cfg, model = build_model(spec, signal, opts.params, opts.overrides, opts.fit.seed)
        if opts.warm_start:  # (the rate-aware encode does not read it: those families start from the signal)
            copy_matching(model, opts.warm_start)
    model = model.to(device)  # the Trainer applies the speed plan (bf16, channels-last, ...)
    task = model.make_task(signal, device, opts)
    trainer = Trainer(model, task, opts.fit, spec.optim, device)
    if training is not None:
        trainer.load_training_state(*training)
    meta = {"signal": signal.kind, "shape": list(signal.data.shape), **signal.meta}

    def save(tr: Trainer) -> None:
        if checkpoint_dir is not None:
            ckpt.save(checkpoint_dir, spec, cfg, model, meta, tr)

    state = trainer.run(callback=callback, checkpoint=save if checkpoint_dir is not None else None)
    result = task.evaluate(model, full=full_metrics)
    recon = result.pop("reconstruction").cpu()
    save(trainer)  # after evaluation: HNeRV's embeddings are cached now and travel along
    result.update(
        {
            "model": spec.name,
            "params": stored_params(spec, cfg),
            "trainable_params": count_params(model),
            "steps": state.step,
            "epochs": round(state.epoch, 3),
            "seconds": round(state.elapsed, 3),
        }
    )
    return FitOutcome(spec, cfg, model, state, result, recon)


def load_for_render(path: Path, device: torch.device):
    spec, cfg, model, header = ckpt.load(path, device)
    model.eval()
    return spec, cfg, model, header
