"""Size a model to a parameter budget by searching its width field.

Counting parameters from a built module (on the meta device, so nothing is allocated) is
exact for every architecture, including ones whose count has no closed form.
"""
from __future__ import annotations

import dataclasses
import re

import torch

from inr.errors import InrError
from inr.models.registry import ModelSpec


def parse_param_budget(text: str) -> int:
    """'0.75M', '750k', '750000' -> 750000."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)\s*", str(text))
    if not m:
        raise InrError(f"cannot read parameter budget '{text}' (examples: 0.75M, 300k, 120000)")
    value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    if value < 1:
        raise InrError(f"parameter budget must be positive, got '{text}'")
    return int(round(value))


def stored_params(spec: ModelSpec, cfg) -> int:
    """Parameters that a compressed file has to carry (HNeRV: decoder + embeddings)."""
    with torch.device("meta"):
        return int(spec.model_cls(cfg).stored_param_count())


def _closest_width(spec: ModelSpec, cfg, budget: int) -> tuple[int, int]:
    """(width, stored count) with the count closest to `budget`; counts grow with width."""
    field = spec.width_field

    def count(width: int) -> int:
        return stored_params(spec, dataclasses.replace(cfg, **{field: width}))

    lo, hi = 1, 2
    while count(hi) < budget:
        lo, hi = hi, hi * 2
        if hi > 1 << 26:
            raise InrError(f"{spec.name}: cannot reach {budget} parameters")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(mid) < budget:
            lo = mid
        else:
            hi = mid
    return min(((w, count(w)) for w in (lo, hi)), key=lambda wc: abs(wc[1] - budget))


def closest_size(spec: ModelSpec, cfg, budget: int, tolerance: float = 0.05) -> tuple[int, dict]:
    """(stored count, config fields to set) of the size closest to `budget`, whether or not it
    is within `tolerance`, which only says how hard to search: the fine field is searched too
    while the width alone misses by more than a quarter of it. Rate control builds from the
    fields directly when the count is close enough for the file's rate, so a budget the
    family can only approach is traded for one it can build, without a second search."""
    width, got = _closest_width(spec, cfg, budget)
    chosen = {spec.width_field: width}
    if abs(got - budget) > tolerance * budget / 4 and spec.fine_field:
        for fine in range(1, 65):
            trial = dataclasses.replace(cfg, **{spec.fine_field: fine})
            try:
                w, c = _closest_width(spec, trial, budget)
            except InrError:
                continue
            if abs(c - budget) < abs(got - budget):
                got, chosen = c, {spec.width_field: w, spec.fine_field: fine}
            if abs(got - budget) <= tolerance * budget / 4:
                break
    return got, chosen


def size_to_budget(spec: ModelSpec, cfg, budget: int, tolerance: float = 0.05):
    """Return a copy of `cfg` whose stored parameter count is as close to `budget` as the width
    allows; raise if the closest is still off by more than `tolerance`.

    Small models can jump by more than the tolerance per width step (NeRV's stem, HNeRV's
    lower-width floor), so the optional fine field is then searched too, re-fitting the width
    for each of its values.
    """
    got, chosen = closest_size(spec, cfg, budget, tolerance)
    if abs(got - budget) > tolerance * budget:
        raise InrError(
            f"{spec.name}: closest size to {budget} parameters is {got} "
            f"({100 * (got - budget) / budget:+.1f} %); choose another budget"
        )
    return dataclasses.replace(cfg, **chosen)
