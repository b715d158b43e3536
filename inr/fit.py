"""The fitting loop shared by every model and signal.

A `FitTask` knows how to draw a batch and score the model on it; the `Trainer` owns the
optimiser, the learning-rate schedule, the budget and the random state. Budgets can be
steps, epochs or wall-clock seconds; the schedule (linear warm-up, cosine decay) runs on
whichever budget is closest to exhausted, so a time-limited fit still anneals properly
instead of being cut off at a high learning rate.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

import torch
from torch import nn

from inr.device import SpeedPlan, autocast, speed_plan, synchronize
from inr.errors import InrError
from inr.metrics import mse_to_psnr
from inr.models.registry import SCHEDULES, OptimDefaults


class FitTask(Protocol):
    """What the Trainer asks of a task. One hook is optional and read with `hasattr`:
    `late_lr_factor() -> float`, the factor on the learning rate of the parameters the
    family's `OptimDefaults.late` names (a rate-aware task's latents in its straight-through
    phase, `inr.export.grid_codec.RateTask`); 1 where a task has none. Another,
    `prepare(model, plan: SpeedPlan)`, is called once the model is on its device and in its
    memory format, for work on the task's fixed inputs (`CoordTask`'s input cache)."""

    steps_per_epoch: int

    def batch_loss(self, model: nn.Module, generator: torch.Generator, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (objective to minimise, MSE on the batch) for the batch of optimisation step `step`."""

    def evaluate(self, model: nn.Module, full: bool = True) -> dict:
        """Evaluation of the whole signal; must contain 'psnr'. `full=False`: PSNR (and the
        reconstruction) alone, for callers that only compare or report it: an encoder
        measures the rest on its decoded file, and MS-SSIM of a 1080p group of frames costs
        seconds."""

    def attach(self, state: "FitState") -> None:
        """Called once by the Trainer with the live state (progress, step), for tasks whose
        loss changes over the fit (e.g. noise-then-rounding quantization)."""


@dataclass
class FitConfig:
    steps: int | None = None
    epochs: int | None = None
    seconds: float | None = None
    lr: float | None = None  # None: the model's paper default
    schedule: str = "fast"  # the family's learning-rate schedule: "fast" or "paper"
    warmup: float | None = None  # fraction of the budget; None: the schedule's
    target_psnr: float | None = None
    eval_every: int = 100
    seed: int = 0
    checkpoint_every: int | None = None
    grad_clip: float | None = None
    # Speed knobs (inr.device.speed_plan): None takes the device's measured default. None of
    # them changes the parameter layout, checkpoints or files, so a fit may resume with any.
    amp: bool | None = None  # autocast (bf16; fp16 + loss scaling on a GPU without bf16); fp32 master weights
    channels_last: bool | None = None  # NHWC for convolutional models
    fused_adam: bool | None = None  # fused Adam kernel instead of the per-parameter loop
    compile: bool = False  # torch.compile the model (slow to start; off by default)
    input_cache: bool | None = None  # a coordinate task's per-point work on its fixed inputs, once

    def validate(self) -> None:
        for name in ("steps", "epochs"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise InrError(f"--{name} must be a positive integer, got {v}")
        if self.seconds is not None and self.seconds <= 0:
            raise InrError(f"--seconds must be positive, got {self.seconds}")
        if self.steps is None and self.epochs is None and self.seconds is None:
            raise InrError("give a budget: --steps, --epochs or --seconds")
        if self.schedule not in SCHEDULES:
            raise InrError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.warmup is not None and not 0 <= self.warmup < 1:
            raise InrError(f"warm-up must be a fraction in [0, 1), got {self.warmup}")


@dataclass
class FitState:
    step: int = 0
    total_steps: int | None = None
    elapsed: float = 0.0
    seconds: float | None = None
    loss: float = float("nan")
    psnr: float = float("nan")  # on the latest training batch
    lr: float = 0.0
    steps_per_epoch: int = 1
    history: list[dict] = field(default_factory=list)

    @property
    def epoch(self) -> float:
        return self.step / max(1, self.steps_per_epoch)

    @property
    def progress(self) -> float:
        parts = []
        if self.total_steps:
            parts.append(self.step / self.total_steps)
        if self.seconds:
            parts.append(self.elapsed / self.seconds)
        return min(1.0, max(parts)) if parts else 0.0

    @property
    def eta(self) -> float | None:
        p = self.progress
        return None if p <= 0 else self.elapsed * (1 - p) / p


Callback = Callable[[FitState], None]


def is_convolutional(model: nn.Module) -> bool:
    """Whether channels-last pays: conv families, unless the model says otherwise (the latent
    grid's few 3x3 convs are dwarfed by its per-pixel matmuls and latent slicing)."""
    declared = getattr(model, "channels_last_friendly", None)  # Representation's claim; plain modules have none
    return any(isinstance(m, nn.Conv2d) for m in model.modules()) if declared is None else declared


def plan_for(model: nn.Module, cfg: FitConfig, device: torch.device) -> SpeedPlan:
    bf16_safe = bool(getattr(model, "bf16_safe", False))  # a family's measured claim, see speed_plan
    # The input cache only means something for a model that plans its inputs (hash grids).
    cache = cfg.input_cache if hasattr(model, "plan_inputs") else False
    return speed_plan(device, is_convolutional(model), bf16_safe, cfg.amp, cfg.channels_last, cfg.fused_adam, cfg.compile, cache)


def apply_plan(model: nn.Module, plan: SpeedPlan) -> None:
    """Memory format and compilation, in place: parameter objects, names and values are kept,
    so the optimizer, checkpoints and exported files see the same model either way."""
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    if plan.compile:
        model.compile()  # in place: state_dict keys stay free of torch.compile's prefix


class Trainer:
    def __init__(self, model: nn.Module, task: FitTask, cfg: FitConfig, optim: OptimDefaults, device: torch.device):
        cfg.validate()
        self.model, self.task, self.cfg, self.device = model, task, cfg, device
        self.speed = plan_for(model, cfg, device)
        apply_plan(model, self.speed)
        sched = optim.schedule(cfg.schedule)
        self.schedule = sched if cfg.warmup is None else dataclasses.replace(sched, warmup=cfg.warmup)
        self.base_lr = cfg.lr if cfg.lr is not None else (sched.lr or optim.lr)
        self.optimizer = torch.optim.Adam(
            optim.param_groups(model),
            lr=self.base_lr,
            eps=optim.eps,
            betas=sched.betas or optim.betas,
            weight_decay=optim.weight_decay,
            **({"fused": True} if self.speed.fused_adam else {}),
        )
        # fp16 autocast only (a GPU without bf16): the loss is scaled so small gradients survive.
        # The scale is not checkpointed: a resumed fit starts it afresh, as it would on any path.
        self.scaler = torch.amp.GradScaler(device.type) if self.speed.loss_scaling else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self._last_full_eval = -(1 << 62)
        total = cfg.steps
        if cfg.epochs is not None:
            by_epochs = cfg.epochs * task.steps_per_epoch
            total = by_epochs if total is None else min(total, by_epochs)
        self.state = FitState(total_steps=total, seconds=cfg.seconds, steps_per_epoch=task.steps_per_epoch)
        task.attach(self.state)
        if hasattr(task, "prepare"):
            task.prepare(model, self.speed)
        # Not a dataclass field (never saved): lets progress displays render the current fit.
        self.state.preview = (lambda: task.preview(model)) if hasattr(task, "preview") else None

    # ------------------------------------------------------------------ checkpoint state
    def training_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, json) that let a fit continue exactly where it stopped."""
        tensors: dict[str, torch.Tensor] = {"rng.sampler": self.generator.get_state()}
        opt = self.optimizer.state_dict()
        scalars: dict = {}
        for pid, st in opt["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
                else:
                    scalars[f"{pid}.{k}"] = v
        info = {
            "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
            "state": {k: v for k, v in asdict(self.state).items()},
            "fit_config": asdict(self.cfg),
            "base_lr": self.base_lr,
        }
        return tensors, info

    def load_training_state(self, tensors: dict[str, torch.Tensor], info: dict) -> None:
        self.generator.set_state(tensors["rng.sampler"])
        state: dict[int, dict] = {}
        for key, val in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = val.to(self.device)
        for key, val in info["optimizer"]["scalars"].items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = val
        saved_groups = info["optimizer"]["param_groups"]
        if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in self.optimizer.param_groups]:
            # a version that groups the parameters differently (learning-rate scales) wrote it
            raise InrError("the checkpoint's optimizer state does not match this version's parameter groups: start a new fit or resume with the version that wrote it")
        self.optimizer.load_state_dict({"state": state, "param_groups": saved_groups})
        self._match_state_layout()
        saved = info["state"]
        self.state.step = saved["step"]
        self.state.elapsed = saved["elapsed"]
        self.state.history = saved.get("history", [])
        if self.cfg.steps is None and self.cfg.epochs is None and self.cfg.seconds is None:
            self.state.total_steps = saved["total_steps"]

    def _match_state_layout(self) -> None:
        """Give each moment its parameter's memory layout. Checkpoints store them contiguous
        (NCHW); a channels-last parameter with an NCHW moment is silently mis-updated by the
        fused Adam kernel, which walks both as flat memory."""
        for p, st in self.optimizer.state.items():
            for k, v in st.items():
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)

    # ------------------------------------------------------------------ loop
    def _done(self) -> bool:
        s = self.state
        if s.total_steps is not None and s.step >= s.total_steps:
            return True
        return s.seconds is not None and s.elapsed >= s.seconds

    def step_once(self) -> float:
        """One optimisation step; returns the batch loss (before the update)."""
        s = self.state
        lr = self.base_lr * self.schedule.factor(s.progress)
        steady = self.base_lr * self.schedule.steady_factor(s.progress)
        late = self.task.late_lr_factor() if hasattr(self.task, "late_lr_factor") else 1.0
        for g in self.optimizer.param_groups:
            g["lr"] = (steady if g.get("steady") else lr) * g.get("lr_scale", 1.0) * (late if g.get("late") else 1.0)
        self.model.train()
        with autocast(self.device, self.speed.amp, self.speed.amp_dtype):
            loss, mse = self.task.batch_loss(self.model, self.generator, s.step)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if self.cfg.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
        else:  # skips the update when the scaled gradients overflowed, then adapts the scale
            self.scaler.scale(loss).backward()
            if self.cfg.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        s.step += 1
        s.lr = lr
        s.loss = float(loss.detach())
        s.psnr = mse_to_psnr(float(mse.detach()))
        return s.loss

    def _target_reached(self) -> bool:
        """Full evaluations are costly (a whole clip): one only once the batch PSNR says the
        target may be met, then at most one per `eval_every` steps until it is."""
        s, target = self.state, self.cfg.target_psnr
        if target is None or s.psnr < target or s.step - self._last_full_eval < self.cfg.eval_every:
            return False
        self._last_full_eval = s.step
        return self.task.evaluate(self.model, full=False)["psnr"] >= target

    def run(self, callback: Callback | None = None, checkpoint: Callable[["Trainer"], None] | None = None) -> FitState:
        """Train until the budget or target PSNR is reached.

        Ctrl-C (KeyboardInterrupt) writes a checkpoint first, then propagates, so the caller
        can stop cleanly and the fit can be resumed.
        """
        s = self.state
        try:
            while not self._done():
                t0 = time.perf_counter()
                self.step_once()
                if s.step % 10 == 0 or s.step == 1:
                    synchronize(self.device)
                s.elapsed += time.perf_counter() - t0
                if s.step % self.cfg.eval_every == 0 or s.step == 1:
                    s.history.append({"step": s.step, "seconds": round(s.elapsed, 3), "psnr": s.psnr, "loss": s.loss})
                if callback:
                    callback(s)
                if checkpoint and self.cfg.checkpoint_every and s.step % self.cfg.checkpoint_every == 0:
                    checkpoint(self)
                if self._target_reached():
                    break
        except KeyboardInterrupt:
            if checkpoint:
                checkpoint(self)
            raise
        s.history.append({"step": s.step, "seconds": round(s.elapsed, 3), "psnr": s.psnr, "loss": s.loss})
        return s
