"""`--model auto`: which family to use for a signal, a rate target and a time budget.

The table is explicit so a user (and `inr encode -v`) can see why a family was picked. It
follows the measurements in bench/ (README, "Benchmarks"): the rate-aware latent grid is
the only family trained for rate and distortion together, it reaches every rate with one
fit, and on this project's CPU benches it beats the fit-then-compress families at every
rate for images and videos alike. Audio has no rate-aware family yet: SIREN is the
classic audio INR.
"""
from __future__ import annotations

from inr.errors import InrError

AUTO = "auto"

_CHOICES = {
    "image": ("grid", "rate-aware latent grid: trained for rate + distortion, best measured RD for images"),
    "video": ("grid", "rate-aware latent grid: trained for rate + distortion, one fit per rate, best measured RD for video"),
    "audio": ("siren", "SIREN: the sine MLP of the audio INR literature (no rate-aware audio family yet)"),
}


def resolve_model(name: str, kind: str) -> tuple[str, str]:
    """(model name, why). A name other than `auto` is returned as it is."""
    if name != AUTO:
        return name, "named by the user"
    try:
        return _CHOICES[kind]
    except KeyError:
        raise InrError(f"no model for {kind} signals") from None


def models_for(kind: str | None) -> list[str]:
    """`auto` and the registered families that handle `kind` signals (all when None)."""
    from inr.models.registry import all_specs

    return [AUTO] + [s.name for s in all_specs() if kind is None or kind in s.signals]


def check_handles(model: str, kind: str, name: str) -> None:
    """Refuse a family that cannot represent this input, naming the user's file and what
    would work: the one check every front end makes before any work is queued."""
    ok = models_for(kind)
    if model not in ok:
        article = {"image": "an image", "video": "a video", "audio": "audio"}.get(kind, kind)
        raise InrError(f"{name} is {article}, which model '{model}' does not handle: choose one of {', '.join(ok)}")
