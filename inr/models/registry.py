"""Model registry: name -> (config dataclass, module class, how it is trained).

Configs are plain dataclasses so they serialise to JSON (checkpoints, bitstream headers)
and back without pickling anything.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from inr.errors import InrError


@dataclass(frozen=True)
class Schedule:
    """A learning-rate curve over the budget (steps, epochs or seconds alike): a linear
    warm-up from `start` x the peak over the first `warmup` of the budget, then a cosine
    decay to `floor` x the peak, or a constant rate. `lr` and `betas`, when set, replace the
    family's Adam settings (a paper's own values)."""

    warmup: float = 0.02
    start: float = 0.0
    decay: str = "cosine"  # or "constant"
    floor: float = 0.0
    lr: float | None = None
    betas: tuple[float, float] | None = None

    def factor(self, progress: float) -> float:
        if self.warmup > 0 and progress < self.warmup:
            return max(self.start + (1.0 - self.start) * progress / self.warmup, 1e-3)
        if self.decay == "constant":
            return 1.0
        span = max(1e-9, 1.0 - self.warmup)
        cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - self.warmup) / span)))
        return self.floor + (1.0 - self.floor) * cos

    def steady_factor(self, progress: float) -> float:
        """The curve of a `steady` parameter group (`OptimDefaults.steady`): the warm-up, then
        the peak to the end."""
        return self.factor(progress) if self.warmup > 0 and progress < self.warmup else 1.0


SCHEDULES = ("fast", "paper")  # fast: tuned for short CPU budgets (bench/bench_schedule.py)


@dataclass(frozen=True)
class OptimDefaults:
    """Adam settings and learning-rate schedules of a family: `paper` as its paper trains it,
    `fast` as measured best for short budgets on a CPU (the default)."""

    lr: float
    eps: float = 1e-8
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    # (parameter-name prefix, lr multiplier): e.g. latent grids learn at 10x the network's
    # rate, since a latent must travel several quantization steps while a weight moves little.
    lr_scales: tuple[tuple[str, float], ...] = ()
    # parameter-name prefixes that keep the peak rate after the warm-up instead of decaying
    # with the schedule: a model that must track other parameters to the end (a rate-aware
    # family's entropy models follow latents that move, and change distribution when the
    # quantization proxy switches from noise to rounding late in the fit)
    steady: tuple[str, ...] = ()
    # parameter-name prefixes whose rate the task may scale down late in the fit
    # (`late_lr_factor()`, where a task has one): a rate-aware family's latents in the
    # straight-through phase (`inr.export.grid_codec.ROUNDING_STEPS`)
    late: tuple[str, ...] = ()
    fast: Schedule = Schedule()
    paper: Schedule = Schedule()

    def schedule(self, name: str) -> Schedule:
        if name not in SCHEDULES:
            raise InrError(f"unknown schedule {name!r} (choose from: {', '.join(SCHEDULES)})")
        return self.fast if name == "fast" else self.paper

    def param_groups(self, model: nn.Module) -> list[dict]:
        groups: dict[tuple[float, bool], list] = {}
        for name, p in model.named_parameters():
            scale = next((s for prefix, s in self.lr_scales if name.startswith(prefix)), 1.0)
            steady = name.startswith(self.steady)  # False for an empty tuple
            late = name.startswith(self.late)
            groups.setdefault((scale, steady, late), []).append(p)
        return [{"params": ps, "lr_scale": s, "steady": st, "late": lt} for (s, st, lt), ps in groups.items()]


@dataclass(frozen=True)
class ModelSpec:
    """A registered family: its config, its `Representation` subclass (everything the rest of
    `inr` asks a family goes through that interface) and how to size it for a signal."""

    name: str
    config_cls: type
    model_cls: type[nn.Module]  # a subclass of inr.models.representation.Representation
    signals: tuple[str, ...]
    description: str
    optim: OptimDefaults
    # Fills a config's shape fields (in/out dims, resolution, frame count) from a signal.
    adapt: Callable[[Any, Any], Any]
    # Name of the integer config field that scales the parameter count monotonically.
    width_field: str
    # Optional second integer field searched (1..64) when the width alone steps too coarsely.
    fine_field: str | None = None

    @property
    def rate_aware(self) -> bool:
        """Trained for distortion + lambda x rate (it has a `rate_bits`) and sized by its rate."""
        from inr.models.representation import Representation

        return self.model_cls.rate_bits is not Representation.rate_bits


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a family registered at run time (a plug-in's or a test's)."""
    _REGISTRY.pop(name, None)


def get_spec(name: str) -> ModelSpec:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InrError(f"unknown model '{name}' (choose from: {', '.join(sorted(_REGISTRY))})") from None


def all_specs() -> list[ModelSpec]:
    _load_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _load_builtin() -> None:
    # Imported lazily so that the registry module itself has no import cycle with models.
    import inr.models.coordinate  # noqa: F401
    import inr.models.grid  # noqa: F401
    import inr.models.nerv  # noqa: F401
    import inr.models.shacira  # noqa: F401


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(spec: ModelSpec, data: dict) -> Any:
    fields = {f.name: f for f in dataclasses.fields(spec.config_cls)}
    retired = getattr(spec.config_cls, "RETIRED_FIELDS", ())  # old files may carry them: ignored
    data = {k: v for k, v in data.items() if k not in retired}
    unknown = set(data) - set(fields)
    if unknown:
        raise InrError(f"config for {spec.name} has unknown fields: {sorted(unknown)}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return spec.config_cls(**kwargs)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
