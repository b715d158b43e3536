"""Motion for the latent grid: displacement fields, the warp they drive, and the block
matching that gives them a start.

A video latent grid holds one latent slice per few frames and blends the two slices around
a frame. Where content moves, that blend is a double exposure: on the tuning clip (Bunny
frames 96-127, one slice per 8 frames) the 7.5 % of pixels that move held 57 % of the
squared error (21 dB there, 33 dB elsewhere), and even the lossless average of each
slice's frames could not exceed 31 dB. Giving every frame a coarse displacement field per
reference slice (sample the slice where the content came from) lifts that ceiling to about
36 dB with integer block matching at 8-pixel cells. The fields are quantized latents like
the rest, so the rate term decides where motion is worth its bits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Pixels per integer of a motion latent. Bunny 96-127 at 0.2 bpp, 60 s: quarter-pel fields
# took 9.3 KiB of 43 (31.31 dB), half-pel 7.0 (31.30), whole pixels 5.7 (31.48).
MOTION_STEP = 1.0


def pixel_grid(height: int, width: int, device=None) -> torch.Tensor:
    """(H, W, 2) normalised (x, y) sampling positions of the pixel centres, as
    `F.grid_sample(align_corners=False)` reads them: sampling a coarser grid there is the
    bilinear upsampling `F.interpolate` does."""
    ys = (2 * torch.arange(height, device=device, dtype=torch.float32) + 1) / height - 1
    xs = (2 * torch.arange(width, device=device, dtype=torch.float32) + 1) / width - 1
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


def sampling_grid(disp: torch.Tensor, height: int, width: int, sign: float = -1.0) -> torch.Tensor:
    """(B, 2, h, w) displacement (dy, dx) in pixels on a coarse grid -> (B, H, W, 2) positions
    that sample `image(p + sign * d(p))`: sign -1 (the default) reads where content came
    from, so `out(p) = ref(p - d)`; +1 undoes that (moves a frame back to its reference)."""
    d = F.interpolate(disp, size=(height, width), mode="bilinear", align_corners=False)
    shift = torch.stack([d[:, 1] * (2 / width), d[:, 0] * (2 / height)], dim=-1)
    return pixel_grid(height, width, disp.device)[None] + sign * shift


def warp(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, H, W) bilinear samples at `grid` (`sampling_grid`), edges clamped
    (as the bilinear upsampling clamps them).

    On the meta device (the header check's cost probe) only the shape is produced: torch
    decomposes `grid_sample` there into dozens of Python-level ops (0.37 s of a 1.19 s decode
    of a 0.4 bpp Bunny file), and the real kernel keeps no intermediate larger than its output."""
    if image.is_meta:
        return image.new_empty(image.shape[0], image.shape[1], grid.shape[1], grid.shape[2])
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def block_match(ref: torch.Tensor, cur: torch.Tensor, cell: int, radius: int = 12, bias: float = 5e-4) -> torch.Tensor:
    """Integer displacement (dy, dx) per `cell` x `cell` block, (2, ceil(H/cell), ceil(W/cell)),
    such that cur(p) ~ ref(p - d), within +-`radius` pixels, by mean absolute difference on
    luma-like (H, W) planes. `bias` per pixel of displacement keeps flat and static blocks
    at zero, where a search would otherwise pick noise. A start for training, which refines
    the fields as floats (the file keeps multiples of MOTION_STEP).

    Coarse to fine: an exhaustive search of the half-resolution planes (a quarter of the
    pixels, a quarter of the positions), then a refinement at full resolution
    (`_refine_match`). 0.023 s a frame pair at 320x180 (Bunny 96-127) where the exhaustive
    full-resolution search took 0.058 s (4 s of a 60 s encode of 32 frames); 91 % of the
    blocks get the exhaustive search's vector, the compensated error is 2 % higher."""
    if cell % 2 or cell < 4 or radius < 4:
        return _exhaustive_match(ref, cur, cell, radius, bias)
    half = [F.avg_pool2d(x[None, None].float(), 2, ceil_mode=True)[0, 0] for x in (ref, cur)]
    coarse = _exhaustive_match(*half, cell // 2, -(-radius // 2), 2 * bias) * 2
    return _refine_match(ref, cur, cell, coarse, radius, bias)


def _block_cost(cur: torch.Tensor, moved: torch.Tensor, blocks: tuple[int, int]) -> torch.Tensor:
    """Mean absolute difference per block, (rows, cols)."""
    return F.adaptive_avg_pool2d((cur - moved).abs()[None, None], blocks)[0, 0]


def _exhaustive_match(ref: torch.Tensor, cur: torch.Tensor, cell: int, radius: int, bias: float) -> torch.Tensor:
    h, w = ref.shape
    blocks = (-(-h // cell), -(-w // cell))
    padded = F.pad(ref[None, None].float(), (radius,) * 4, mode="replicate")[0, 0]
    cur = cur.float()
    best = torch.full(blocks, float("inf"), device=ref.device)
    out = torch.zeros(2, *blocks, device=ref.device)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = padded[radius - dy : radius - dy + h, radius - dx : radius - dx + w]
            cost = _block_cost(cur, shifted, blocks) + bias * (abs(dy) + abs(dx))
            better = cost < best
            best = torch.where(better, cost, best)
            out[0] = torch.where(better, float(dy), out[0])
            out[1] = torch.where(better, float(dx), out[1])
    return out


def _refine_match(ref: torch.Tensor, cur: torch.Tensor, cell: int, start: torch.Tensor, radius: int, bias: float) -> torch.Tensor:
    """Refine a block field `start` (2, rows, cols) at full resolution: per block the best of
    the nine vectors within +-1 of its start, then twice the best of its own, its four
    neighbours' and zero (vectors clamped to +-`radius`). Each block reads the reference at
    its own shift, a gather, and is scored over its own `cell` x `cell` pixels. The
    neighbours' vectors mend the blocks whose half-resolution search went astray (fine
    texture aliases there)."""
    h, w = ref.shape
    blocks = start.shape[-2:]
    padded = F.pad(ref[None, None].float(), (radius,) * 4, mode="replicate")[0, 0]
    cur = cur.float()
    ys = torch.arange(h, device=ref.device)[:, None]
    xs = torch.arange(w, device=ref.device)[None, :]
    rows = (ys // cell).clamp_max(blocks[0] - 1)
    cols = (xs // cell).clamp_max(blocks[1] - 1)
    block = (rows * blocks[1] + cols).flatten()
    area = torch.zeros(blocks.numel(), device=ref.device).index_add_(0, block, torch.ones(h * w, device=ref.device))

    def best_of(candidates: list[torch.Tensor]) -> torch.Tensor:
        best = torch.full(blocks, float("inf"), device=ref.device)
        out = candidates[0]
        for d in candidates:
            d = d.clamp(-radius, radius)
            moved = padded[ys + radius - d[0].long()[rows, cols], xs + radius - d[1].long()[rows, cols]]
            mad = torch.zeros_like(area).index_add_(0, block, (cur - moved).abs().flatten()) / area
            cost = mad.view(blocks) + bias * d.abs().sum(0)
            better = cost < best
            best = torch.where(better, cost, best)
            out = torch.where(better, d, out)
        return out

    field = best_of([start + torch.tensor([ey, ex], dtype=start.dtype, device=start.device)[:, None, None] for ey in (-1, 0, 1) for ex in (-1, 0, 1)])
    for _ in range(2):
        around = F.pad(field[None], (1, 1, 1, 1), mode="replicate")[0]
        neighbours = [around[:, 1 + dy : 1 + dy + blocks[0], 1 + dx : 1 + dx + blocks[1]] for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        field = best_of([field, *neighbours, torch.zeros_like(field)])
    return field


@torch.no_grad()
def block_gain(ref: torch.Tensor, cur: torch.Tensor, disp: torch.Tensor, cell: int) -> torch.Tensor:
    """(rows, cols) squared error that displacements `disp` (2, rows, cols) remove per block of
    `cell` x `cell` pixels: sum over the block of (cur - ref)^2 - (cur - ref(p - d))^2, on
    (H, W) planes. What a field is worth, to weigh against its bits."""
    h, w = cur.shape
    moved = warp(ref[None, None].float(), sampling_grid(disp[None].float(), h, w))[0, 0]
    rows, cols = disp.shape[-2:]
    area = (h / rows) * (w / cols)
    still = F.adaptive_avg_pool2d((cur - ref)[None, None].float() ** 2, (rows, cols))[0, 0]
    compensated = F.adaptive_avg_pool2d((cur - moved)[None, None] ** 2, (rows, cols))[0, 0]
    return (still - compensated) * area


def vector_bits(disp: torch.Tensor) -> torch.Tensor:
    """Rough bits of integer displacement vectors (2, ...) -> (...): an Exp-Golomb-like length
    per non-zero component (a zero one in a mostly zero field costs next to nothing)."""
    mag = disp.abs()
    return torch.where(mag > 0, 2 + 2 * torch.log2(1 + mag), torch.zeros_like(mag)).sum(0)

