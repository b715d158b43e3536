"""How a video is cut into groups of frames (GOPs), and whether it can be encoded at all.

A GOP is fitted with the whole per-clip encoder, so its peak memory is that of encoding a
clip of its length: its frames as uint8 plus what the family's fit holds (its
`fit_memory`: float copies of the signal, live activations, the model or latents with
gradients and Adam moments). `peak_bytes` estimates it (generously); the default GOP
length is the longest that fits the memory budget, capped so that long clips get several
models (NIRVANA-style) rather than one huge one. Input is refused only when a single frame
cannot fit: anything else is encoded in GOPs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from inr.errors import InrError

GiB = 1 << 30
BASE_BYTES = 1 * GiB  # Python, torch and the codecs loaded
DEFAULT_PARAMS = 3_000_000  # when no size is given: above every family's default size
MAX_DEFAULT_GOP = 300  # frames: beyond this a default plan splits the clip
DEFAULT_BUDGET_CAP = 3 * GiB  # a default encode's memory, whatever the clip (--memory-gb changes it)


def default_memory_budget() -> int:
    """3 GiB, or half of the machine's memory where that is less: the encode shares the
    machine (with the decoder, a browser, other jobs), and with groups of frames a long or
    large clip needs no more than one group's worth."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * GiB
    return min(total // 2, DEFAULT_BUDGET_CAP)


def peak_bytes(frames: int, height: int, width: int, params: int, model: str | None = None) -> int:
    """Estimated peak memory of encoding `frames` frames of height x width with a model of
    `params` stored parameters (one GOP; the chunk reader holds nothing more): the
    interpreter, the uint8 frames and the family's `fit_memory` (the generic estimate when
    `model` is None)."""
    from inr.models import get_spec
    from inr.models.representation import Representation

    family = get_spec(model).model_cls if model else Representation
    return BASE_BYTES + frames * height * width * 3 + family.fit_memory(frames, height, width, params)


def model_params(frames: int, height: int, width: int, params: int | None, bpp: float | None, bits: int = 8) -> int:
    """Stored parameters of one GOP's model: a `params` budget is split over the clip's frames
    in proportion (the caller passes this GOP's share); a bpp target sizes it by its pixels."""
    if params:
        return params
    if bpp:
        return int(bpp * frames * height * width / bits)
    return DEFAULT_PARAMS


@dataclass
class GopPlan:
    lengths: list[int]  # frames of each GOP, in order
    peak_bytes: int  # estimated peak of the largest GOP
    budget: int

    @property
    def starts(self) -> list[int]:
        return [sum(self.lengths[:i]) for i in range(len(self.lengths))]


def plan_gops(
    frames: int,
    height: int,
    width: int,
    gop: int | None = None,
    params: int | None = None,
    bpp: float | None = None,
    budget: int | None = None,
    cuts: list[int] | tuple[int, ...] = (),
    model: str | None = None,
) -> GopPlan:
    """GOP lengths for a clip. `gop` forces the length (the last GOP of a stretch takes the
    rest); by default the longest length within `budget` and MAX_DEFAULT_GOP, balanced so the
    GOPs of a stretch differ by at most one frame. `cuts` (frame numbers, e.g. scene cuts)
    each start a new GOP. `params` is the whole clip's budget; `model` the family (its memory
    estimate). Raises InrError (one line) when
    even one frame at a time would not fit, or a forced length does not."""
    budget = budget or default_memory_budget()

    def peak(n: int) -> int:
        share = None if params is None else max(1, params * n // frames)
        return peak_bytes(n, height, width, model_params(n, height, width, share, bpp), model)

    if peak(1) > budget:
        raise InrError(
            f"{width}x{height} frames need about {peak(1) / GiB:.1f} GiB to encode even one at a time "
            f"(budget {budget / GiB:.1f} GiB); use --resize or a smaller --bpp/--params"
        )
    if gop is not None:
        if gop < 1:
            raise InrError("--gop must be at least 1 frame")
        n = min(gop, frames)
        if peak(n) > budget:
            raise InrError(f"--gop {gop} needs about {peak(n) / GiB:.1f} GiB at {width}x{height} (budget {budget / GiB:.1f} GiB); use a shorter --gop")
        lengths = [x for size in _stretches(frames, cuts) for x in [n] * (size // n) + ([size % n] if size % n else [])]
        return GopPlan(lengths, peak(max(lengths)), budget)
    lo, hi = 1, min(frames, MAX_DEFAULT_GOP)
    while lo < hi:  # longest length that fits: peak() grows with n
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if peak(mid) <= budget else (lo, mid - 1)
    lengths = []
    for size in _stretches(frames, cuts):
        count = -(-size // lo)
        base, extra = divmod(size, count)
        lengths += [base + 1] * extra + [base] * (count - extra)
    return GopPlan(lengths, peak(max(lengths)), budget)


def _stretches(frames: int, cuts) -> list[int]:
    """Lengths of the stretches between cuts (frame numbers inside the clip start a stretch)."""
    edges = [0, *sorted({c for c in cuts if 0 < c < frames}), frames]
    return [b - a for a, b in zip(edges, edges[1:])]


SCENE_CUT_THRESHOLD = 0.12  # mean absolute difference of consecutive thumbnails, [0, 1]
THUMB = (36, 64)  # (height, width) the frames are pooled to before comparing


def scene_cuts(chunks, threshold: float = SCENE_CUT_THRESHOLD) -> list[int]:
    """Frame numbers where a new scene starts, from uint8 (n, H, W, 3) chunks in order: the
    mean absolute difference of consecutive grey thumbnails above `threshold` (a hard cut
    changes most of the picture; motion and fades change a little of it per frame). One
    streaming pass: only a chunk and one thumbnail are held."""
    import torch

    cuts, prev, index = [], None, 0
    for chunk in chunks:
        grey = chunk.float().mean(-1, keepdim=True).permute(0, 3, 1, 2) / 255
        thumbs = torch.nn.functional.adaptive_avg_pool2d(grey, THUMB)[:, 0]
        if prev is not None:
            thumbs = torch.cat([prev[None], thumbs])
        diffs = (thumbs[1:] - thumbs[:-1]).abs().mean((1, 2))
        first = index + (0 if prev is not None else 1)
        cuts += [first + i for i, d in enumerate(diffs.tolist()) if d > threshold]
        index += len(chunk)
        prev = thumbs[-1]
    return cuts
