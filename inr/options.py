"""Fit options: the one place that owns what a fit is asked to do, its defaults and their checks.

Every front end (the CLI, the job server, the batch encoder, the codec comparison) builds its
`FitOptions` through `fit_options`, so a default budget or a refused loss is the same whichever
door a user comes in by.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inr.errors import InrError

if TYPE_CHECKING:  # torch stays unimported until a fit is built: the CLI parser reads LOSSES
    import torch

    from inr.fit import FitConfig

# The default budget when none of steps/epochs/seconds is given: a video is fitted by passes
# over its frames, an image (or any other signal) by optimisation steps (an image "epoch" is a
# handful of steps).
DEFAULT_VIDEO_EPOCHS = 30
DEFAULT_IMAGE_STEPS = 1000

# Losses any family may be asked for; each representation says which of them it can train
# with (Representation.losses): SSIM needs whole frames, so coordinate batches refuse it.
LOSSES = ("l2", "l1", "l1_ssim")

KIB = 1024  # `fit --weights-kb`: parameters per KiB of 8-bit weights


def _fit_config(**fields) -> "FitConfig":
    from inr.fit import FitConfig

    return FitConfig(**fields)


@dataclass
class FitOptions:
    model: str
    params: int | None = None  # stored-parameter budget; None: the model's defaults
    overrides: dict | None = None  # config fields set explicitly
    batch_size: int | None = None  # coords per step (coord models) or frames per step (frame models); None: the family's
    loss: str = "l2"
    fit: "FitConfig" = dataclasses.field(default_factory=_fit_config)
    # Stored weights of a fitted neighbour (the previous group of frames) to start from:
    # entries whose name and shape match the new model are copied (NIRVANA's warm start).
    warm_start: "dict[str, torch.Tensor] | None" = None


def default_budget(steps: int | None, epochs: int | None, seconds: float | None, kind: str) -> dict:
    """steps/epochs/seconds as given, or the default budget for a `kind` signal when none is given."""
    if steps is None and epochs is None and seconds is None:
        if kind == "video":
            return {"steps": None, "epochs": DEFAULT_VIDEO_EPOCHS, "seconds": None}
        return {"steps": DEFAULT_IMAGE_STEPS, "epochs": None, "seconds": None}
    return {"steps": steps, "epochs": epochs, "seconds": seconds}


def check_loss(model: str, loss: str) -> None:
    """Refuse a loss the family cannot train with, before any media is read."""
    from inr.models import get_spec

    if loss not in LOSSES:
        raise InrError(f"unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
    allowed = get_spec(model).model_cls.losses
    if loss not in allowed:
        raise InrError(f"model '{model}' does not train with loss '{loss}' (it takes: {', '.join(allowed)})")


def fit_options(
    model: str,
    kind: str,
    steps: int | None = None,
    epochs: int | None = None,
    seconds: float | None = None,
    params: int | None = None,
    batch_size: int | None = None,
    loss: str = "l2",
    **fit_fields,
) -> FitOptions:
    """Checked FitOptions for `model` (`auto` resolved) on a `kind` signal ("image", "video",
    "audio"), with the default budget when none is given; `fit_fields` are the other FitConfig
    fields (seed, lr, schedule, ...), None meaning the FitConfig default."""
    from inr.models.auto import resolve_model

    model = resolve_model(model, kind)[0]
    check_loss(model, loss)
    if batch_size is not None and batch_size <= 0:
        raise InrError(f"--batch-size must be a positive integer, got {batch_size}")
    fit = _fit_config(**default_budget(steps, epochs, seconds, kind), **{k: v for k, v in fit_fields.items() if v is not None})
    fit.validate()
    return FitOptions(model=model, params=params, batch_size=batch_size, loss=loss, fit=fit)
