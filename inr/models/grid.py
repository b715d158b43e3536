"""Rate-aware latent grids (C3 / Cool-chic): a pyramid of quantized latent grids, upsampled
and decoded per pixel by a tiny synthesis network, trained for distortion + lambda * rate.

One module serves images and videos: an image is a one-frame video. Level k holds
`latent_channels` grids (one, luma, for the finest `luma_levels`) of (T_k, ceil(H / 2^(k +
finest)), ceil(W / 2^(k + finest))) integers, T_k = ceil(T / f_k)
with the temporal factor f_k = min(T, time_base * time_growth^k): one latent slice per
`time_base` frames at every level (time_growth 1), or ever fewer at the coarser levels
(time_growth 2). A video with small frames also has motion fields (`motion`, see
`inr/models/motion.py`): per frame, a coarse displacement towards each of the two slices it
blends, so a moving edge is read where it was rather than double-exposed. The latents are
entropy-coded under a Laplace model whose (mean, scale) come from a small context network
over already-decoded neighbours (checkerboard order: see `inr/export/grid_codec.py`), so
the rate the loss sees is the rate the file pays.

Why no learned upsampler: bilinear-in-space, linear-in-time upsampling costs nothing to
store, keeps decoding to a handful of tensor ops, and the 3x3 refinement convs after the
per-pixel MLP recover most of what a learned filter would give at this scale.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from inr.models.motion import MOTION_STEP, block_gain, block_match, sampling_grid, vector_bits, warp
from inr.models.registry import ModelSpec, OptimDefaults, register
from inr.models.representation import FrameRepresentation
from inr.models.schedules import FAST, PAPER

@dataclass
class GridConfig:
    frames: int = 1
    height: int = 64
    width: int = 64
    out_dim: int = 3
    levels: int = 7
    latent_channels: int = 3  # grids per level (3: a YCbCr pyramid to start from)
    time_base: int = 1  # temporal downsampling of level 0 (video)
    time_growth: int = 2  # f_k = time_base * time_growth^k; 2 in files that predate the field
    hidden: int = 24  # synthesis MLP width (1x1 convs)
    hidden_layers: int = 2
    refine: int = 2  # residual 3x3 conv layers after the MLP
    context: int = 8  # context network width (0: factorized Laplace per level)
    temporal: int = 0  # 1: the context also sees the previous latent time slice (video)
    motion: int = 0  # video: pixels per motion-field cell (0: slices blended in place); missing in older files
    residual: int = 0  # video: pixels per cell of the per-frame residual latents (0: none); missing in older files
    coarse_context: int = 0  # 1: the levels' context also reads the coarser level's 4 neighbours; 0 in older files
    raster: int = 0  # images: 1 codes each level in raster order (12 causal neighbours), 0 in checkerboard halves
    finest: int = 0  # level 0 holds a latent per 2^finest x 2^finest pixels (FINEST_IMAGE_BPP); 0 in older files
    luma_levels: int = 0  # the finest this many levels hold only the luma grid (channel 0: LUMA_ONLY_IMAGE_LEVELS); 0 in older files
    upsample: int = 0  # the levels' spatial upsampling: 0 bilinear (older files), 1 bicubic (UPSAMPLE_CUBIC)
    level_gain: int = 0  # level k's latents are read as 2^(-level_gain * k) times their value (`level_gains`); 0 in older files

    def validate(self) -> None:
        """Ranges a decoder accepts before building anything (hostile headers)."""
        checks = {
            "frames": 1 <= self.frames <= 100_000,
            "height": 1 <= self.height <= 16384,
            "width": 1 <= self.width <= 16384,
            "out_dim": 1 <= self.out_dim <= 4,
            "levels": 1 <= self.levels <= 12,
            "latent_channels": 1 <= self.latent_channels <= 8,
            "time_base": 1 <= self.time_base <= 1024,
            "time_growth": 1 <= self.time_growth <= 2,
            "hidden": 1 <= self.hidden <= 256,
            "hidden_layers": 0 <= self.hidden_layers <= 8,
            "refine": 0 <= self.refine <= 8,
            "context": 0 <= self.context <= 64,
            "temporal": 0 <= self.temporal <= 1,
            "coarse_context": 0 <= self.coarse_context <= 1,
            "raster": self.raster in (0, 1) and (not self.raster or self.frames == 1),  # a wavefront a level: images
            "finest": 0 <= self.finest <= 3,
            "luma_levels": 0 <= self.luma_levels <= self.levels,
            "upsample": self.upsample in (0, 1) and not (self.upsample and self.motion),  # warps sample bilinearly
            "level_gain": self.level_gain in (0, 1),
            # motion fields refer to the level-0 slices: every level must share that layout
            "motion": self.motion in MOTION_CELLS and (not self.motion or (per_frame_fits(self.frames, self.height, self.width) and self.time_growth == 1)),
            "residual": self.residual in RESIDUAL_CELLS and (not self.residual or per_frame_fits(self.frames, self.height, self.width)),
        }
        bad = [k for k, ok in checks.items() if not (isinstance(getattr(self, k), int) and ok)]
        if bad:
            raise ValueError(f"grid config out of range: {', '.join(bad)}")


MOTION_CELLS = (0, 4, 8, 16, 32)
# Motion-compensated frames are rendered whole (windows would need the latents a displacement
# reaches): up to this many pixels a frame, two of which a training step holds.
MOTION_MAX_PIXELS = 1 << 17


def per_frame_fits(frames: int, height: int, width: int) -> bool:
    """Whether a clip may have the per-frame tensors (motion fields, residual latents): a
    video whose frames are small enough to render whole."""
    return frames > 1 and height * width <= MOTION_MAX_PIXELS


RESIDUAL_CELLS = (0, 2, 4, 8, 16)


def residual_shape(cfg: GridConfig) -> tuple[int, int, int, int]:
    """(C, T, rows, cols) of the per-frame residual latents: one grid per frame and latent
    channel, a value per `residual` x `residual` pixel cell."""
    return (cfg.latent_channels, cfg.frames, -(-cfg.height // cfg.residual), -(-cfg.width // cfg.residual))


def motion_shape(cfg: GridConfig) -> tuple[int, int, int, int]:
    """(4, T, rows, cols) of the motion fields: (dy, dx) towards each frame's lower, then
    upper latent slice, one field per frame, a value per `motion` x `motion` pixel cell."""
    return (4, cfg.frames, -(-cfg.height // cfg.motion), -(-cfg.width // cfg.motion))


# BT.601 full range: Y in [0, 1], Cb/Cr centred on 0. The pyramid is built in YCbCr because
# chroma detail is cheap to drop and the rate term finds that at once.
_RGB_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = torch.linalg.inv(_RGB_TO_YCC)


# New encodes get `GridConfig.level_gain` 1: level k's latents are read as 2^-k times their
# integers, so a coarser level's step is finer in pixel terms. A latent of level k draws a
# 2^k x 2^k patch through the upsampling, so its rounding error costs about 4^k times a finest
# latent's in squared error: high-rate theory gives each level a step in proportion to
# 1 / sqrt(that gain), 2^-k. With one step for all, a 12-frame 1080p GOP at 0.02 bpp (a few
# dozen training steps: the analysis start is most of what it gets) spent 44 % of its bits on
# its half-resolution level for 0.13 dB. As a gain on the latents, not folded into the
# synthesis' first layer: there Adam moved the coarse levels' columns by far more than their
# size (one of two 1080p GOPs of upscaled carphone diverged to 12.7 dB), and at 320x180 it lost
# 1.6-2.0 dB at 0.2 bpp. Measured with the gain, decoded PSNR (dB at bpp), one run each:
# - 1080p, `--bpp 0.02 --seconds 120 --gop 12`, 24 frames: Bunny 0-23 26.09 vs 22.97, Bunny
#   100-123 25.96 vs 23.33, carphone upscaled 24.70 vs 22.54, all at 0.020;
# - the tuning clips at 60 s (Bunny 96-127 / carphone 60-91), with vs without:
#   0.05 bpp 27.11 at 0.049 vs 26.67 at 0.048 / 28.10 at 0.049 vs 27.74 at 0.044;
#   0.1 bpp 31.18 at 0.102 vs 30.31 at 0.101 / 32.38 at 0.091 vs 31.91 at 0.101;
#   0.2 bpp 35.18 at 0.201 vs 34.69 at 0.205 / 35.20 at 0.203 vs 34.60 at 0.199;
#   0.4 bpp 36.68 at 0.375 vs 36.13 at 0.362 / 36.34 at 0.360 vs 35.76 at 0.357.
# - images, the tuning crops at 60 s (256x256 of Bunny frames 120 / 70 / 20, decoded PSNR):
#   frame 120 at 0.5 bpp 31.78 at 0.518 vs 31.53 at 0.517; frame 70 at 1 bpp 37.22 at 1.031
#   vs 36.77 at 1.013; frame 20 at 0.25 bpp 28.17 at 0.268 vs 27.83 at 0.258.


def level_gains(cfg: GridConfig) -> list[float]:
    """What each level's latents are multiplied by where they are read (`level_gain`): powers
    of two, so the product is exact."""
    return [2.0 ** -(cfg.level_gain * k) for k in range(cfg.levels)]


def start_scales(cfg: GridConfig) -> list[float]:
    """Each `in_steps` tensor's step in pixel terms, relative to level 0's: the levels' gains,
    then the residual's (level 0's)."""
    return level_gains(cfg) + [1.0] * bool(cfg.residual)


def level_shapes(cfg: GridConfig) -> list[tuple[int, int, int, int]]:
    """(C_k, T_k, H_k, W_k) of every latent level, finest first."""
    out = []
    for k in range(cfg.levels):
        f, s = time_factor(cfg, k), 2 ** (k + cfg.finest)
        c = 1 if k < cfg.luma_levels else cfg.latent_channels
        out.append((c, -(-cfg.frames // f), -(-cfg.height // s), -(-cfg.width // s)))
    return out


def time_factor(cfg: GridConfig, k: int) -> int:
    """Frames per latent time slice at level k."""
    return min(cfg.frames, cfg.time_base * cfg.time_growth**k)


# ------------------------------------------------------------------ windows
CUBIC_A = -0.75  # Keys' cubic convolution parameter, torch's (and OpenCV's) bicubic
# A window is (y0, y1, x0, x1) in output pixels. Frames larger than a training step can
# afford (1080p: a step over whole frames held 3 GB of activations and half a level-0 slice
# of context features) are trained on windows: only the latents a window reads are
# gathered, upsampled and scored, so a step's memory and time follow the window, not the
# frame. Rendering without gradients goes band by band for the same reason.
def resize_taps(n_out: int, n_in: int, lo: int, hi: int, cubic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights, each (K, hi - lo), of outputs lo..hi-1 of an n_in -> n_out
    resize with align_corners=False: K = 2 bilinear taps (`F.interpolate`'s, so a window
    matches the whole-frame resize up to float rounding), or K = 4 bicubic ones (Keys' cubic
    convolution, a = CUBIC_A, indices clamped at the borders: `F.interpolate`'s bicubic rule,
    which `resize_matrix` writes as one matrix). On the CPU, even under a meta default device
    (the header check's probe): read as ints."""
    if not cubic:
        dst = torch.arange(lo, hi, dtype=torch.float32, device="cpu")
        src = ((dst + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
        i0 = src.floor().long().clamp_max(n_in - 1)
        frac = src - i0
        return torch.stack([i0, (i0 + 1).clamp_max(n_in - 1)]), torch.stack([1 - frac, frac])
    a = CUBIC_A
    src = (torch.arange(lo, hi, dtype=torch.float64, device="cpu") + 0.5) * (n_in / n_out) - 0.5
    i0 = src.floor()
    t = src - i0

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    idx = (i0.long()[None] + torch.arange(-1, 3, device="cpu")[:, None]).clamp(0, n_in - 1)
    return idx, torch.stack([far(t + 1), near(t), near(1 - t), far(2 - t)]).float()


def window_taps(cfg: "GridConfig", h: int, w: int, window: tuple[int, int, int, int]):
    """`resize_taps` of an h x w level's rows and columns for `window` (y0, y1, x0, x1) of the
    frame, and the span (r0, r1, c0, c1) of level cells they read."""
    y0, y1, x0, x1 = window
    ty, tx = resize_taps(cfg.height, h, y0, y1, bool(cfg.upsample)), resize_taps(cfg.width, w, x0, x1, bool(cfg.upsample))
    return ty, tx, (int(ty[0].min()), int(ty[0].max()) + 1, int(tx[0].min()), int(tx[0].max()) + 1)


def resize_matrix(n_out: int, n_in: int, cubic: bool) -> torch.Tensor:
    """(n_out, n_in) matrix of the 1-D resize `resize_taps` describes: a level upsampled as two
    matrix products (rows, then columns) runs forward and backward on BLAS: 0.8-1.8 ms for a
    3-channel level of a 256x256 image, where torch's bicubic kernel took 4.5-5.6 ms and its
    bilinear one 1.1-1.3 (an ad hoc timing, 20 repeats)."""
    idx, w = resize_taps(n_out, n_in, 0, n_out, cubic)
    m = torch.zeros(n_out, n_in, dtype=torch.float64, device="cpu")
    rows = torch.arange(n_out, device="cpu").expand_as(idx)
    m.index_put_((rows.flatten(), idx.flatten()), w.double().flatten(), accumulate=True)
    return m.float()


def nearest_index(n_out: int, n_in: int, dst: torch.Tensor) -> torch.Tensor:
    """Source index of outputs `dst` of an n_in -> n_out nearest resize (F.interpolate's rule)."""
    if n_out == n_in:
        return dst
    scale = torch.tensor(n_in, dtype=torch.float32, device="cpu") / torch.tensor(n_out, dtype=torch.float32, device="cpu")  # float32, as torch's
    return torch.floor(dst.float() * scale.to(dst.device)).long().clamp_max(n_in - 1)


def _apply_taps(z: torch.Tensor, taps, start: int, dim: int) -> torch.Tensor:
    """z resized along `dim` (-2 rows, -1 columns) at `resize_taps` (on z's device), z being a
    crop that starts at index `start` of that axis."""
    idx, w = taps
    w = w.to(z.dtype)
    out = None
    for i, wt in zip(idx, w):
        part = z.index_select(dim, i - start) * (wt[:, None] if dim == -2 else wt)
        out = part if out is None else out + part
    return out


# ------------------------------------------------------------------ context model
def checkerboard(h: int, w: int, device=None) -> torch.Tensor:
    """True on the 'anchor' half ((y + x) even), decoded first without spatial context."""
    yy = torch.arange(h, device=device)[:, None]
    xx = torch.arange(w, device=device)[None, :]
    return (yy + xx) % 2 == 0


# Images up to this many pixels are raster-coded: decoding takes a pass per wavefront, about
# 3H + W per level (the latents of a 256x256 image decode in 0.5 s on two cores, of a
# 512x512 one in 1.7 s; `inr decode` of a 256x256 file takes 3.8 s, start-up included).
RASTER_MAX_PIXELS = 1 << 18
# The causal neighbourhood of a raster-order context (`GridConfig.raster`): (dy, dx) offsets of
# already-decoded sites, nearest first. Each reaches at most two rows up and two columns
# either way, so a level decodes in wavefronts: every site with 3y + x = t at once
# (`raster_passes`). On the tuning image (Bunny frame 120 at 0.5 bpp) a context network
# refitted to fixed latents coded them in 10.6 % fewer bits with these than with the
# checkerboard's four anchor neighbours; a checkerboard with eight more anchors, the coarser
# grid's neighbours, a channel code and the previous channels saved 8.5 % with 3x the passes.
RASTER_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (-2, 0), (0, -2), (-1, -2), (-1, 2), (-2, -1), (-2, 1), (-2, -2), (-2, 2))


def raster_passes(h: int, w: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(rows, columns) of the sites of each wavefront of an h x w raster-coded grid, in
    decoding order: wavefront t holds the sites with 3y + x = t, y ascending. Every neighbour
    in RASTER_NEIGHBOURS of such a site lies on an earlier wavefront."""
    y = torch.arange(h)[:, None].expand(h, w).flatten()
    x = torch.arange(w)[None, :].expand(h, w).flatten()
    t = 3 * y + x
    order = torch.argsort(t * h + y)
    counts = torch.bincount(t, minlength=3 * (h - 1) + w).tolist()
    ys, xs = y[order].split(counts), x[order].split(counts)
    return [(a, b) for a, b in zip(ys, xs)]


_RASTER_DY = torch.tensor([dy for dy, _ in RASTER_NEIGHBOURS])[:, None]
_RASTER_DX = torch.tensor([dx for _, dx in RASTER_NEIGHBOURS])[:, None]


def raster_gather(latent: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """The RASTER_NEIGHBOURS of sites (ys, xs) of grids `latent` (N, H, W): (N, sites, 12),
    zero outside the grid. One gather from the padded grids (a wavefront is a few hundred
    sites; twelve gathers cost more than its network)."""
    n, h, w = latent.shape
    flat = F.pad(latent, (2, 2, 2, 0)).reshape(n, -1)
    idx = (ys + 2 + _RASTER_DY) * (w + 4) + (xs + 2 + _RASTER_DX)  # (12, sites)
    return flat.index_select(1, idx.T.flatten()).view(n, ys.numel(), len(RASTER_NEIGHBOURS))


def context_features(latent: torch.Tensor, coarser: torch.Tensor | None, prev: torch.Tensor | None = None, dim: int = -1, n_coarse: int = 1, raster: bool = False) -> torch.Tensor:
    """(N, H, W) latents of one level -> (N, H, W, F) context per site (the F features
    stacked along `dim`: 0 gives (F, N, H, W)): the four neighbours
    (anchors only: every non-anchor is zeroed, so a non-anchor sees its four decoded anchor
    neighbours and an anchor sees nothing of its own level), the co-located latent of the
    coarser level (decoded before this one) and, with `n_coarse` 5, its four neighbours in
    the coarser grid (`coarser` is then (5, N, H, W): `LatentGrid.coarser_at`), and the
    anchor flag. Zero outside the grid.

    With `prev` ((N, H, W) co-located latents of the previous time slice, wholly decoded
    before this one, and a (N,) flag of which grids have one) two more: that latent and the
    flag. Static video content repeats from slice to slice, so the mean follows `prev` there
    and its latents cost almost nothing."""
    h, w = latent.shape[-2:]
    if raster:  # every site's causal neighbours: what a raster-order decoder has when it gets there
        p = F.pad(latent, (2, 2, 2, 0))
        feats = [p[:, 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] for dy, dx in RASTER_NEIGHBOURS]
    else:
        anchors = checkerboard(h, w, device=latent.device).to(latent.dtype)
        p = F.pad((latent * anchors)[:, None], (1, 1, 1, 1))[:, 0]
        feats = [p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    if coarser is None:
        feats += [torch.zeros_like(latent)] * n_coarse
    else:
        feats += [coarser] if n_coarse == 1 else list(coarser.unbind(0))
    if not raster:
        feats.append(anchors.expand_as(latent))
    if prev is not None:
        values, has = prev
        feats.append(values)
        feats.append(has.to(latent.dtype)[:, None, None].expand_as(latent))
    return torch.stack(feats, dim=dim)


def previous_slices(z: torch.Tensor, slices: torch.Tensor | None = None, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal context of latents z (C, T, H, W), for time slices `slices` (all if None) and a
    row/column range (all if None): ((C * S, rows, cols) latents of each slice's predecessor,
    zero for slice 0; (C * S,) flags)."""
    c, t, h, w = z.shape
    slices = torch.arange(t, device=z.device) if slices is None else slices
    (r0, r1), (c0, c1) = rows or (0, h), cols or (0, w)
    before = (slices - 1).clamp_min(0)
    has = (slices > 0).to(z.dtype)
    values = z[:, :, r0:r1, c0:c1].index_select(1, before) * has[None, :, None, None]
    return values.reshape(-1, r1 - r0, c1 - c0), has.repeat(c)


def channels_first(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """A per-site MLP (Linear layers and activations) applied to x (C, N), or to each of a
    batch x (B, C, N): the same network as `net(x.T).T`, evaluated as (out, C) x (C, N)
    products. For 8-wide layers over a few hundred thousand sites this order is twice as fast
    on CPU (one wide product instead of a tall, thin one); the synthesis MLP runs it per
    frame (`LatentGrid.synthesize`)."""
    for layer in net:
        if not isinstance(layer, nn.Linear):
            x = layer(x)
        elif x.dim() == 2:
            x = torch.addmm(layer.bias[:, None], layer.weight, x)
        else:  # baddbmm: a broadcast matmul plus bias ran the synthesis twice as slow
            x = torch.baddbmm(layer.bias[:, None], layer.weight.expand(x.shape[0], -1, -1), x)
    return x


class ContextModel(nn.Module):
    """Laplace (mean, log-scale) for every latent, checkerboard-causal (or raster-causal,
    `raster`: images).

    A three-layer MLP maps each site's context (`context_features`) to the Laplace
    parameters, plus a learned per-level bias. Decoding runs it twice per level (anchors,
    then the rest; a raster level once per wavefront, `wavefront_params`), vectorised over
    every grid of the level: never one call per latent.
    Plain matmuls rather than masked convs: with a handful of channels, CPU convolutions
    fall back to slow im2col kernels. With `width` 0 it is a per-level factorized Laplace."""

    def __init__(self, levels: int, width: int, temporal: bool = False, n_coarse: int = 1, raster: bool = False):
        super().__init__()
        self.levels, self.width, self.temporal, self.n_coarse, self.raster = levels, width, temporal, n_coarse, raster
        self.level_bias = nn.Parameter(torch.zeros(levels, 2))  # (mean, log-scale) per level
        if width:
            inputs = (len(RASTER_NEIGHBOURS) if raster else 5) + n_coarse + 2 * temporal
            self.net = nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def params(self, k: int, latent: torch.Tensor, coarser: torch.Tensor | None, prev=None, coder: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """latent (N, H, W) of level k (N = C x T_k grids) -> (mean, log_scale), same shape.
        Only anchor values of `latent` are read; `prev` is `previous_slices`' output, read
        only by a temporal model.

        Two evaluation orders of one network. The rate estimate (training, rate control)
        runs it channels-first, (F, sites) matmuls: 8-wide layers over a few hundred
        thousand sites are twice as fast that way on CPU as sites-first (the context
        network was a fifth of a video training step). The entropy coder (`coder=True`)
        keeps the sites-first order every file so far was written with: its outputs are
        rounded to 1/64 before coding, which hides most last-bit differences between
        orders, not all, and one flipped parameter desynchronises the decoder."""
        bias = self.level_bias[k]
        if not self.width:
            return bias[0].expand_as(latent), bias[1].expand_as(latent)
        if coder:
            out = self.net(context_features(latent, coarser, self._temporal_input(latent, prev), n_coarse=self.n_coarse, raster=self.raster))
            return out[..., 0] + bias[0], out[..., 1] + bias[1]
        x = self.head(self.features(latent, coarser, prev))
        return (x[0] + bias[0]).view_as(latent), (x[1] + bias[1]).view_as(latent)

    def _temporal_input(self, latent: torch.Tensor, prev):
        """What `context_features` takes as `prev`: None for a model without temporal
        context; zeros (no previous slice) where a temporal model is given none."""
        if not self.temporal:
            return None
        return prev if prev is not None else (torch.zeros_like(latent), latent.new_zeros(latent.shape[0]))

    def features(self, latent: torch.Tensor, coarser: torch.Tensor | None, prev=None) -> torch.Tensor:
        """(F, sites) context of grids `latent` (N, H, W), channels-first: `head`'s input."""
        return context_features(latent, coarser, self._temporal_input(latent, prev), dim=0, n_coarse=self.n_coarse, raster=self.raster).flatten(1)

    # Sites a rate pass without gradients (rate control, evaluations) runs the network on at
    # once: its 8-wide intermediates then stay in cache. A 12-frame 1080p GOP's whole-level
    # chunks (2M sites, 66 MB per intermediate) spent half of such a pass in the network.
    HEAD_BLOCK: ClassVar[int] = 1 << 15

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """(F, sites) features -> (2, sites) (mean, log-scale) before the level bias."""
        if not self.width:
            return x.new_zeros(2, x.shape[1])
        n = x.shape[1]
        if torch.is_grad_enabled() or n <= self.HEAD_BLOCK:
            return channels_first(self.net, x)
        return torch.cat([channels_first(self.net, x[:, i : i + self.HEAD_BLOCK]) for i in range(0, n, self.HEAD_BLOCK)], 1)

    def wavefront_params(self, k: int, latent: torch.Tensor, coarser: torch.Tensor | None, ys: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_scale), each (N, sites), of the sites (ys, xs) of one raster wavefront of
        grids `latent` (N, H, W) (only earlier wavefronts' values are read) with `coarser` as
        `params` takes it. The coder's evaluation, sites-first; the encoder runs it on the same
        wavefronts as the decoder, so both evaluate identical shapes."""
        near = raster_gather(latent, ys, xs)
        bias = self.level_bias[k]
        if not self.width:
            return bias[0].expand_as(near[..., 0]), bias[1].expand_as(near[..., 0])
        if coarser is None:
            up = near.new_zeros(*near.shape[:2], self.n_coarse)
        else:
            up = (coarser if self.n_coarse > 1 else coarser[None])[:, :, ys, xs].permute(1, 2, 0)
        out = self.net(torch.cat([near, up], -1))
        return out[..., 0] + bias[0], out[..., 1] + bias[1]


def empirical_bits(z: torch.Tensor) -> float:
    """Bits of `z` rounded, at the empirical entropy of each channel (z[c]): a quick, slightly
    high estimate of what the context model will pay."""
    bits = 0.0
    for ch in z:
        q = torch.round(ch).long().flatten()
        counts = torch.bincount(q - q.min()).double()
        counts = counts[counts > 0]
        bits += float(-(counts * torch.log2(counts / counts.sum())).sum())
    return bits


FIT_SAMPLE = 1 << 20  # latents a scale fit reads (spread over the tensor)


def best_log_scale(q: torch.Tensor) -> float:
    """The log-scale of a zero-mean Laplace that codes the integers `q` in the fewest bits
    (golden-section search). The mean magnitude, the continuous maximum-likelihood scale,
    is far off for mostly-zero integers: at 0.05 bpp it priced the start's latents at twice
    their entropy (a lone +-1 at 15 bits), and a short 1080p fit, whose context model barely
    trains, wrote files at twice their target (0.045 bpp for 0.02)."""
    x = q.flatten()
    if x.numel() > FIT_SAMPLE:
        x = x[:: -(-x.numel() // FIT_SAMPLE)]
    zero = torch.zeros((), dtype=x.dtype, device=x.device)

    def bits(s: float) -> float:
        return float(laplace_bits(x, zero, torch.full((), s, dtype=x.dtype, device=x.device)))

    lo, hi = -4.0, 8.0  # laplace_bits' clamp
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = bits(a), bits(b)
    for _ in range(30):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = bits(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = bits(b)
    return 0.5 * (lo + hi)


# The rounding proxy of an image fit's noise phase (C3, Kim et al. 2024; Cool-chic 3): soft
# rounding at a temperature annealed from SOFT_ROUND_T[0] to [1] around Kumaraswamy noise whose
# parameter goes from KUMARASWAMY_A[0] (peaked at zero) to [1] (1: uniform), the papers'
# schedules, not tuned here. Measured at 60 s against uniform noise on the tuning crops
# (256x256, Bunny frames 70 / 120), decoded PSNR, one run each: at 1 bpp 32.91 and 32.78 dB
# at 0.993 / 0.988 bpp against 31.99 / 32.05 at 0.983 / 0.997 (frame 70), 32.27 at 0.999
# against 31.31 at 0.963 (frame 120); at 2 bpp 38.13 against 37.20 (frame 70); at 0.5 bpp
# 28.53 at 0.501 against 28.52-28.60 at 0.511-0.519 (frame 120); at 0.25 bpp (frame 20, a
# smooth crop) 34.97 at 0.251 against 34.72-34.89 at 0.252-0.255. Videos keep uniform noise:
# on the tuning clips at 0.2 bpp it was no better (Bunny 96-127 34.60 dB at 0.208 against
# 34.51-34.63 at 0.201-0.204) or worse (carphone 60-91 33.24 at 0.199 against 33.63 at
# 0.202, with a quarter fewer steps: a video fit is short of steps, and these are more ops);
# at 0.4 bpp worse on both (Bunny 35.69 dB at 0.369 against 36.31 at 0.374, carphone 34.37
# at 0.423 against 34.84 at 0.395).
SOFT_ROUND_T = (0.3, 0.1)
KUMARASWAMY_A = (2.0, 1.0)
# The share of an image fit trained under that proxy (videos: RateTarget.noise_fraction, 0.75,
# chosen under uniform noise). Soft rounding is closer to the file's integers than uniform
# noise, and a longer phase under it paid on the tuning crops at 60 s (decoded PSNR, one run
# each, against 0.75: frame 70 at 1 bpp 32.91 / 32.78 dB at 0.993 / 0.988 bpp; frame 120 at
# 0.5 bpp 28.53 at 0.501; frame 20 at 0.25 bpp 34.97 at 0.251): 0.85 gave 33.72 at 1.009,
# 28.92 at 0.501, 36.08 at 0.262; 0.95 gave 33.94 at 0.994, 29.07 at 0.503, 36.31 at 0.271,
# the last 8 % over its rate (lambda control has a short straight-through phase to answer
# the rate's rise in it): 0.85 keeps a margin. The straight-through phase gets
# ROUNDING_STEPS' worth of the latents' learning rate however short it is.
IMAGE_NOISE_FRACTION = 0.85


def soft_round(x: torch.Tensor, t: float) -> torch.Tensor:
    """Agustsson & Theis' soft rounding: round(x) as t -> 0, the identity as t grows."""
    f = torch.floor(x)
    return f + 0.5 * torch.tanh((x - f - 0.5) / t) / math.tanh(0.5 / t) + 0.5


def kumaraswamy_noise(u: torch.Tensor, a: float) -> torch.Tensor:
    """U(0, 1) samples `u` as Kumaraswamy(a, b) noise on [-0.5, 0.5], b chosen so its mode is
    0 (a = 1: uniform)."""
    b = (2**a * (a - 1) + 1) / a
    return (1 - (1 - u) ** (1 / b)) ** (1 / a) - 0.5


def quantize_latents(z: torch.Tensor, mode: str, anneal: float | None = None) -> torch.Tensor:
    """Latents as a rate-aware loss sees them: "noise" adds U(-0.5, 0.5), the differentiable
    proxy of rounding (C3, Cool-chic, SHACIRA), or, given `anneal` (0 to 1 through the noise
    phase), soft-rounds around Kumaraswamy noise (SOFT_ROUND_T); "ste" rounds with a
    straight-through gradient, so the network adapts to the integers the file holds; "round"
    is the decoder's."""
    if mode == "noise":
        if anneal is None:
            return z + (torch.rand_like(z) - 0.5)
        p = min(max(anneal, 0.0), 1.0)
        t = SOFT_ROUND_T[0] + (SOFT_ROUND_T[1] - SOFT_ROUND_T[0]) * p
        a = KUMARASWAMY_A[0] + (KUMARASWAMY_A[1] - KUMARASWAMY_A[0]) * p
        return soft_round(soft_round(z, t) + kumaraswamy_noise(torch.rand_like(z), a), t)
    r = torch.round(z)
    if mode == "ste":
        return z + (r - z).detach()
    return r


def laplace_bits(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(x) summed: x under a Laplace(mean, scale) integrated over [x - .5, x + .5],
    the same bins constriction's QuantizedLaplace codes with."""
    return laplace_site_bits(x, mean, log_scale).sum()


def laplace_site_bits(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """`laplace_bits` per site. Written in |x - mean| so both tails use the numerically
    stable side of the CDF."""
    scale = log_scale.clamp(-4.0, 8.0).exp()
    d = (x - mean).abs()
    outer = torch.exp(-(d + 0.5) / scale)
    tail = 0.5 * (torch.exp(-(d - 0.5).clamp_min(0) / scale) - outer)  # bin wholly on one side
    centre = 1 - 0.5 * torch.exp(-(0.5 - d).clamp_min(0) / scale) - 0.5 * outer  # bin holds the mean
    p = torch.where(d < 0.5, centre, tail)
    return -torch.log2(p.clamp_min(2.0**-24))


# ------------------------------------------------------------------ the model
class LatentGrid(FrameRepresentation):
    """Latents -> frames. `forward(idx)` renders frames `idx` (B,) as (B, C, H, W)."""

    losses = ("l2",)  # its task minimises MSE + lambda x rate: the distortion term is MSE

    def __init__(self, cfg: GridConfig):
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.latents = nn.ParameterList([nn.Parameter(torch.zeros(s)) for s in level_shapes(cfg)])
        c_in = sum(z.shape[0] for z in self.latents) + bool(cfg.residual) * cfg.latent_channels  # the residual has its own inputs
        layers: list[nn.Module] = []
        for _ in range(cfg.hidden_layers):
            layers += [nn.Linear(c_in, cfg.hidden), nn.ReLU()]
            c_in = cfg.hidden
        layers.append(nn.Linear(c_in, cfg.out_dim))
        self.synthesis = nn.Sequential(*layers)  # per pixel: matmuls (see synthesize), not im2col
        self.refine = nn.ModuleList([nn.Conv2d(cfg.out_dim, cfg.out_dim, 3, padding=1, padding_mode="replicate") for _ in range(cfg.refine)])
        for conv in self.refine:  # start as identity: the residual branch learns corrections
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.context = ContextModel(cfg.levels, cfg.context, temporal=bool(cfg.temporal), n_coarse=5 if cfg.coarse_context else 1, raster=bool(cfg.raster))
        if cfg.motion:
            # (dy, dx) towards the lower and the upper slice of every frame, in MOTION_STEP
            # units, coded after the levels with their own context model (previous frame's field)
            self.motion_latents = nn.Parameter(torch.zeros(motion_shape(cfg)))
            self.motion_context = ContextModel(1, cfg.context, temporal=True)
        else:
            self.motion_latents = None
        if cfg.residual:
            # Per-frame corrections at 1/residual of the resolution, coded after the motion
            # fields with their own context model (previous frame's residual): blended
            # slices miss what changes shape between them (a turning head, an arm).
            # Measurements at RESIDUAL_CELL.
            self.residual_latents = nn.Parameter(torch.zeros(residual_shape(cfg)))
            self.residual_context = ContextModel(1, cfg.context, temporal=True)
        else:
            self.residual_latents = None
        self.quant_mode = "round"  # "noise" (training proxy), "ste", "round" (decode)
        self.quant_anneal: float | None = None  # the noise proxy's progress (`quantize_latents`); None: uniform noise
        # the training rate's gather positions (`_gathered_bits`): shapes alone decide them
        self._gather_sites: dict = {}
        self._gather_batches: dict = {}
        self._resize_matrices: dict = {}  # `_resize`

    channels_last_friendly = False  # per-pixel matmuls on (B, H, W, C); see inr.fit.is_convolutional
    # latents travel in section LATS (the side codec), not as weights; they are also what the
    # straight-through phase slows (`OptimDefaults.late`, grid_codec.ROUNDING_STEPS)
    side_tensors = ("latents.", "motion_latents", "residual_latents")

    # Below this many bytes a file cannot afford the default synthesis: at 2 KB (a 256x256
    # image at 0.25 bpp) its weights and their quantization parameters took ~70 % of the file.
    # Measured at 300 steps on material the reports do not use (a 256x256 crop of Bunny frame
    # 120; Bunny frames 96-127 at 320x180): hidden 12 / one layer gained 3.3, 0.4 and 0.5 dB on
    # the image at 2, 8 and 17 KB (0.8 dB at 8 KB after 1000 steps), tied on the clip at 11.5 KB
    # and lost 0.45 dB on it at 46 KB.
    SMALL_FILE_BYTES: ClassVar[int] = 24_000
    # Below this many bytes even that network is most of the file: a 176x144 frame of carphone
    # (frame 10, a tuning image) at 0.3 bpp (950 bytes) decoded at 20.6 dB at 0.254 bpp with it,
    # 23.3 dB at 0.290 with hidden 8, one refinement conv and a 4-wide context (JPEG's lowest
    # quality: 23.3 dB at 0.289 bpp). Raised from 1.5 KB to 3 KB when the weight-depth search
    # went per module (3fd3919): at 60 s and 0.25 bpp on 256x256 tuning crops (2.1-2.3 KB) the
    # tiny network gained 0.38 and 0.34 dB at 2-3 % fewer bytes on two smooth crops of Bunny
    # frames 95 and 45 (46.30 -> 46.68, 46.65 -> 46.99 dB) and 0.27 dB at 3.8 % more on frame
    # 120 (28.72 -> 29.00; 1.1-1.2x the steps); at 0.5 bpp (4.2 KB) it was a wash (-0.03 to
    # -0.09 dB at -2 to +1 % bytes, frames 20, 120, 95).
    TINY_FILE_BYTES: ClassVar[int] = 3_000

    @classmethod
    def config_for_rate(cls, cfg: GridConfig, bits: float) -> GridConfig:
        bpp = bits / (cfg.frames * cfg.height * cfg.width)
        if bpp < MOTION_COARSE_BPP and cfg.motion:
            cfg = dataclasses.replace(cfg, motion=MOTION_COARSE_CELL)
        if bpp < RESIDUAL_MIN_BPP:
            cfg = dataclasses.replace(cfg, residual=0)
        cfg = with_time_structure(cfg, bpp)
        if cfg.frames == 1 and bpp < FINEST_IMAGE_BPP:
            cfg = dataclasses.replace(cfg, finest=1)
        if cfg.frames == 1:  # the coarsest level keeps its chroma, however few the levels
            cfg = dataclasses.replace(cfg, luma_levels=max(0, min(LUMA_ONLY_IMAGE_LEVELS, cfg.levels - 1)))
        elif LUMA_ONLY_VIDEO_BPP[0] <= bpp < LUMA_ONLY_VIDEO_BPP[1]:
            cfg = dataclasses.replace(cfg, luma_levels=1)
        if bits / 8 < cls.TINY_FILE_BYTES:
            return dataclasses.replace(cfg, hidden=min(cfg.hidden, 8), hidden_layers=min(cfg.hidden_layers, 1), refine=min(cfg.refine, 1), context=min(cfg.context, 4))
        if bits / 8 < cls.SMALL_FILE_BYTES:
            return dataclasses.replace(cfg, hidden=min(cfg.hidden, 12), hidden_layers=min(cfg.hidden_layers, 1))
        return cfg

    @classmethod
    def fit_memory(cls, frames, height, width, params):
        """The float signal (the task reads it in place), every latent about 20 bytes (the
        value, its gradient, two Adam moments and a rounded copy for rate control), what a
        training step or a render band holds (their pixels are capped, so a constant), and
        512 MiB for the coding passes and the decode that measures the GOP (a 20-frame 1080p
        GOP encode peaked at 3.4 GB RSS where the rest of this estimate said 2.95)."""
        from inr.export.grid_codec import TRAIN_PIXELS

        cfg = with_time_structure(GridConfig(frames=frames, height=height, width=width), None)  # the layout with the most latents
        cfg = dataclasses.replace(cfg, levels=max(1, min(cfg.levels, int(math.log2(max(2, min(height, width)))) - 1)))
        latents = sum(math.prod(shape) for shape in level_shapes(cfg))
        if per_frame_fits(frames, height, width):  # what _adapt adds: fields and residual
            cfg = dataclasses.replace(cfg, motion=MOTION_CELL, residual=RESIDUAL_CELL)
            latents += math.prod(motion_shape(cfg)) + math.prod(residual_shape(cfg))
        step = (TRAIN_PIXELS + cls.RENDER_PIXELS) * (cfg.levels * cfg.latent_channels + 4 * cfg.hidden) * 4 * 2
        return frames * height * width * 3 * 4 + 20 * latents + step + (512 << 20)

    def make_task(self, signal, device, opts):
        from inr.pipeline import rate_target

        return self.rate_task(signal, device, rate_target(opts, signal, None, None))

    def rate_task(self, signal, device, target, overhead_bits: float = 0.0):
        """The task `encode_rate_aware` trains with (MSE + lambda x bpp, lambda steered)."""
        from inr.export.grid_codec import GridTask

        return GridTask(signal, device, target, overhead_bits)

    def start_at_rate(self, bpp: float, pixels: int) -> float:
        return self.retarget(bpp, pixels)

    @torch.no_grad()
    def round_latents(self) -> None:
        for z in self.latents:
            z.copy_(torch.round(z))

    def start_from(self, signal) -> None:
        self.init_from_frames(frames_of(signal))

    def side_codec(self):
        from inr.export.grid_codec import LatentSection

        return LatentSection()

    # ---------------------------------------------------------------- latents
    def per_frame(self) -> list[tuple[nn.Parameter, "ContextModel"]]:
        """The coded tensors after the levels, in file order, each with its context model:
        the motion fields (4, T, ceil(H / cell), ceil(W / cell)), then the residual latents
        (C, T, ceil(H / cell), ceil(W / cell)), where the config has them. Both hold a grid
        per frame, the levels' layout with no coarser level."""
        out = []
        if self.motion_latents is not None:
            out.append((self.motion_latents, self.motion_context))
        if self.residual_latents is not None:
            out.append((self.residual_latents, self.residual_context))
        return out

    @property
    def num_coded(self) -> int:
        """Integer tensors section LATS carries: the levels, then `per_frame()`'s."""
        return self.config.levels + len(self.per_frame())

    def coded(self, k: int) -> torch.Tensor:
        """Coded tensor k: latent level k (C, T_k, H_k, W_k), then `per_frame()`'s."""
        return self.latents[k] if k < self.config.levels else self.per_frame()[k - self.config.levels][0]

    def in_steps(self) -> list[nn.Parameter]:
        """The coded tensors in units of the latent step, which the synthesis' first layer
        reads linearly: the levels and the residual (not the motion fields, in pixels)."""
        return [*self.latents, *([self.residual_latents] if self.residual_latents is not None else [])]

    def context_of(self, k: int) -> tuple["ContextModel", int]:
        """(context model, its level index) that codes coded tensor k."""
        return (self.context, k) if k < self.config.levels else (self.per_frame()[k - self.config.levels][1], 0)

    def quantized(self) -> list[torch.Tensor]:
        """Every coded tensor as the loss sees it (`quant_mode`), in `coded`'s order. Quantized
        as one flat tensor: per tensor, the soft rounding's two dozen ops forward and backward
        were 9 ms of a 256x256 image's training step, 6 ms at once."""
        coded = [self.coded(k) for k in range(self.num_coded)]
        flat = quantize_latents(torch.cat([z.reshape(-1) for z in coded]), self.quant_mode, self.quant_anneal)
        return [part.view_as(z) for part, z in zip(flat.split([z.numel() for z in coded]), coded)]

    RATE_CHUNK: ClassVar[int] = 1 << 20  # latents coded per context-network call (~200 MB of temporaries)
    # Latents the training rate scores per context-network call (`_gathered_bits`). On a 320x180
    # clip at 0.2 bpp (Bunny 96-127, ~480k latents scored a step) the rate's forward and
    # backward took a median 96.4 ms as 25 calls (one per channel and level) and 69.1 ms
    # batched, the two interleaved in one process (12 rounds); separate runs at 2^16 to 2^20
    # sites a call all gave 66-71 ms (best of 4 x 8 repeats; this shared 2-core machine
    # varies by up to 40 % between runs). The op count falls 5-fold, the arithmetic does not.
    RATE_BATCH: ClassVar[int] = 1 << 18
    # Gather positions kept (`_gathered_bits`), in int32 entries over both caches (64 MB): a
    # training step's of a 320x180 clip take ~15M, an image's ~5M; a 1080p GOP's evaluations
    # would take gigabytes, and compute theirs as they go.
    GATHER_CACHE: ClassVar[int] = 1 << 24

    def rate_bits(self, latents: list[torch.Tensor] | None = None, idx: torch.Tensor | None = None, window: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """Bits of all latents under the context model: what the file will pay.

        With `idx` (the frames of a training batch) only the latent time slices those frames
        read are scored, scaled up to the whole level: an unbiased estimate that puts the rate
        gradient on the latents the distortion gradient moves, at a fraction of the cost.
        (Scoring a random quarter of each large slice as well, scaled 4x, was tried: unbiased
        in value, but Adam then moved the unscored latents for distortion alone and the rate
        ran away from its target, 0.076 bpp for a 0.1 target on Bunny.) With `window` too,
        only the latents that window reads are scored, for the same reason.
        Large levels are scored a few grids at a time, so memory does not follow the level.
        Without gradients (rate control, evaluations), a constant coded tensor costs nothing,
        as in the file (an emptied level: `drop_empty_levels`)."""
        latents = latents if latents is not None else self.quantized()
        frames = None if idx is None else torch.unique(idx).tolist()
        free = set() if torch.is_grad_enabled() else {k for k, z in enumerate(latents) if not z.numel() or bool(z.min() == z.max())}
        scored = []  # (coded tensor, its time slices, weight): the whole-frame rate, gathered
        for k in range(self.config.levels, len(latents)):  # one slice per frame, no coarser level
            if k in free:
                continue
            t = latents[k].shape[1]
            scored.append((k, range(t) if frames is None else frames, 1.0 if frames is None else t / len(frames)))
        total = latents[0].new_zeros(())
        coarser = None
        for k in reversed(range(self.config.levels)):
            z = latents[k]
            t = z.shape[1]
            slices = None
            if idx is not None and t > 1:
                slices = torch.unique(self.slices_for(k, idx))
            scale = 1.0 if slices is None else t / slices.numel()
            if k in free:
                pass  # a constant level codes nothing (it is still the next level's coarser context)
            elif window is not None:
                total = total + self._window_bits(k, z, coarser, slices, window) * scale
            else:
                scored.append((k, range(t) if slices is None else slices.tolist(), scale))
            coarser = z
        if window is None:
            total = total + self._scored_bits(latents, scored)
        return total

    def coded_bits(self, k: int) -> float:
        """Bits of coded tensor k alone (every time slice) as the file will code it: rounded,
        under the context model."""
        was = self.quant_mode
        self.quant_mode = "round"
        try:
            with torch.no_grad():
                latents = self.quantized()
                return float(self._scored_bits(latents, [(k, range(latents[k].shape[1]), 1.0)]))
        finally:
            self.quant_mode = was

    def _scored_bits(self, latents: list[torch.Tensor], scored: list[tuple[int, list[int], float]]) -> torch.Tensor:
        """Bits of time slices of coded tensors (`scored`: (k, slices, weight)): gathered
        (`_gathered_bits`) where the gather positions may be kept, else chunk by chunk."""
        total = latents[0].new_zeros(())
        gathered = []
        for k, slices, weight in scored:
            if self._gather_entries(k, len(slices)) <= self.GATHER_CACHE // 2:
                gathered.append((k, slices, weight))
                continue
            # too large to keep gather positions for (a 1080p level): priced as the coder
            # reads it, chunk by chunk (rebuilding the positions each call took 1.6x as long)
            coarser = latents[k + 1] if k + 1 < self.config.levels else None
            chosen = torch.tensor(list(slices), device=latents[k].device)
            for _, grids, mean, log_scale in self.context_chunks(k, latents[k], coarser, chosen):
                total = total + laplace_bits(grids, mean, log_scale) * weight
        if gathered:  # (its buffer copies every coded tensor)
            total = total + self._gathered_bits(latents, gathered)
        return total

    def _gather_entries(self, k: int, slices: int) -> int:
        """Gather positions `_site_index` would hold for `slices` time slices of coded tensor k."""
        context, _ = self.context_of(k)
        c, _, h, w = self.coded(k).shape
        return c * h * w * slices * (1 + (context.net[0].in_features if context.width else 0))

    def _gathered_bits(self, latents: list[torch.Tensor], scored: list[tuple[int, list[int], float]]) -> torch.Tensor:
        """Bits of time slices of coded tensors (`scored`: (k, slices, weight x each site's
        bits)), each context network run once per RATE_BATCH sites.

        Every context input is a latent (or zero, or one: the anchor and previous-slice flags),
        so a batch's whole (features, sites) matrix is gathered from the coded tensors laid
        end to end, at positions that depend on the shapes alone (`_site_index`, cached).
        Built from shifted slices and stacks instead, a 256x256 image's 131k sites took 30 ms
        of a 97 ms training step to assemble (forward and backward; 12 ms gathered): a slice's
        backward fills and adds a zero tensor the size of its grid."""
        dev = latents[0].device
        buffer = torch.cat([torch.tensor([0.0, 1.0], dtype=latents[0].dtype, device=dev), *(z.reshape(-1) for z in latents)])
        total = buffer.new_zeros(())
        groups: dict[int, list] = {}  # context model -> pieces ((k, slice, channel, rows), ...), in order
        for k, slices, weight in scored:
            context, level = self.context_of(k)
            c, _, h, w = latents[k].shape
            # a slice larger than a batch goes a channel at a time, a channel larger than
            # that a band of rows at a time: memory follows the batch, not the level
            split = c * h * w > self.RATE_BATCH
            band = max(1, self.RATE_BATCH // w) if split else h
            for s in slices:
                for ch in (range(c) if split else [None]):
                    for r0 in range(0, h, band):
                        r1 = min(r0 + band, h)
                        groups.setdefault(id(context), [context, []])[1].append(((k, int(s), ch, r0, r1), level, weight, (1 if split else c) * (r1 - r0) * w))
        for context, pieces in groups.values():
            start, sites = 0, 0
            for i, (_, _, _, n) in enumerate(pieces):
                sites += n
                if sites >= self.RATE_BATCH or i == len(pieces) - 1:
                    total = total + self._batch_bits(context, buffer, pieces[start : i + 1])
                    start, sites = i + 1, 0
        return total

    def _batch_bits(self, context: "ContextModel", buffer: torch.Tensor, pieces: list) -> torch.Tensor:
        """`_gathered_bits` of one batch of pieces ((k, slice, channel or None), level, weight,
        sites) under one context model."""
        dev = buffer.device
        if len(pieces) == 1:
            index = self._site_index(*pieces[0][0], dev)
        else:
            key = (tuple(p[0] for p in pieces), str(dev))
            index = self._gather_batches.get(key)
            if index is None:
                index = torch.cat([self._site_index(*p[0], dev) for p in pieces], 1)
                self._keep(self._gather_batches, key, index)
        # features and own values gathered apart: slicing one (features + 1, sites) gather
        # made each slice's backward fill and add a zero tensor of the whole (two 12 MB fills,
        # a quarter of the rate's forward and backward on a 320x180 clip: 68 -> 56 ms)
        features = buffer.index_select(0, index[:-1].reshape(-1)).view(index.shape[0] - 1, index.shape[1])
        own = buffer.index_select(0, index[-1])
        counts = [p[3] for p in pieces]
        # each piece's level bias, broadcast: its backward is a sum per piece, not a gather's
        # index_add of every site into a handful of rows
        x = context.head(features) + torch.cat([context.level_bias[p[1], :, None].expand(2, n) for p, n in zip(pieces, counts)], 1)
        bits = laplace_site_bits(own, x[0], x[1])
        weights = [p[2] for p in pieces]
        if any(w != 1.0 for w in weights):
            bits = bits * torch.repeat_interleave(torch.tensor(weights, dtype=bits.dtype, device=dev), torch.tensor(counts, device=dev))
        return bits.sum()

    def _keep(self, cache: dict, key, index: torch.Tensor) -> None:
        """Cache `index` under `key` while both caches hold at most GATHER_CACHE entries; the
        concatenated batches (a video step's differ with its frames) give way first."""
        while self._gather_batches and self.gather_cached() + index.numel() > self.GATHER_CACHE:
            self._gather_batches.pop(next(iter(self._gather_batches)))
        if self.gather_cached() + index.numel() <= self.GATHER_CACHE:
            cache[key] = index

    def gather_cached(self) -> int:
        """Int32 entries the gather caches hold (`_keep`)."""
        return sum(v.numel() for c in (self._gather_sites, self._gather_batches) for v in c.values())

    def _site_index(self, k: int, s: int, ch: int | None, r0: int, r1: int, device) -> torch.Tensor:
        """(features + 1, sites) int32 positions in `_gathered_bits`' buffer (0: zero, 1: one, then
        every coded tensor flattened, in order) of the context inputs of rows r0..r1-1 of time
        slice s of coded tensor k (channel `ch`, or all), in `context_features`' order, and
        last of each site's own value. The same inputs `ContextModel.params` reads; cached
        per shape (`_keep`)."""
        key = (k, s, ch, r0, r1, str(device))
        if key in self._gather_sites:
            return self._gather_sites[key]
        shapes = [self.coded(j).shape for j in range(self.num_coded)]
        offsets = [2 + sum(math.prod(sh) for sh in shapes[:j]) for j in range(len(shapes))]
        context, _ = self.context_of(k)
        c, t, h, w = shapes[k]
        g = torch.arange(c)[:, None, None] if ch is None else torch.tensor([ch])[:, None, None]
        y, x = torch.arange(r0, r1)[None, :, None], torch.arange(w)[None, None, :]
        zero, one = torch.tensor(0), torch.tensor(1)  # the buffer's positions of 0.0 and 1.0

        def at(j: int, tj, yy, xx):  # positions in coded tensor j, zero (position 0) outside it
            _, tt, hh, ww = shapes[j]
            inside = (yy >= 0) & (yy < hh) & (xx >= 0) & (xx < ww)
            return torch.where(inside, offsets[j] + ((g * tt + tj) * hh + yy.clamp(0, hh - 1)) * ww + xx.clamp(0, ww - 1), 0)

        rows = []
        if context.width:
            if context.raster:
                rows += [at(k, s, y + dy, x + dx) for dy, dx in RASTER_NEIGHBOURS]
            else:  # a neighbour is read only where it is an anchor
                rows += [torch.where((y + dy + x + dx) % 2 == 0, at(k, s, y + dy, x + dx), 0) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
            if k + 1 < self.config.levels:  # the coarser level's co-located latent (and its four neighbours)
                _, tc, hc, wc = shapes[k + 1]
                tk = int(nearest_index(t, tc, torch.tensor([s])))
                iy, ix = nearest_index(h, hc, torch.arange(r0, r1))[:, None], nearest_index(w, wc, torch.arange(w))[None, :]
                near = ((0, 0),) if context.n_coarse == 1 else ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
                rows += [at(k + 1, tk, iy + dy, ix + dx) for dy, dx in near]
            else:
                rows += [zero] * context.n_coarse
            if not context.raster:
                rows.append(torch.where((y + x) % 2 == 0, one, zero))  # the anchor flag
            if context.temporal:
                rows.append(at(k, s - 1, y, x) if s > 0 else zero)
                rows.append(one if s > 0 else zero)
        rows.append(at(k, s, y, x))
        shape = (g.shape[0], r1 - r0, w)
        index = torch.stack([r.expand(shape).flatten() for r in rows]).to(device=device, dtype=torch.int32)
        self._keep(self._gather_sites, key, index)
        return index

    def _slice_groups(self, k: int, z: torch.Tensor, coarser: torch.Tensor | None, slices: torch.Tensor | None, chunk: int, reverse: bool = False):
        """Coded tensor k (C, T_k, H, W) in groups of at most `chunk` sites (or one grid, where
        a grid is larger), in channel-major order of its (C, |slices|) grids: several whole
        channels at once where a channel's time slices `slices` (all if None) fit, else a
        channel's slices a few at a time. Yields (channel slice, start among the slices,
        grids (C' * S, H, W), their coarser-level context, their previous slices). Context
        inputs are gathered for the group alone, so memory follows a chunk, not the level.
        (A video's per-frame fields and residual are coded a frame at a time: four and three
        one-frame grids, once a network call each, were 448 of the 512 context calls that
        decoding a 320x180 clip made, and most of its latents' decoding time.)"""
        c, t, h, w = z.shape
        slices = torch.arange(t, device=z.device) if slices is None else slices
        step = max(1, chunk // (h * w))
        if step >= len(slices):  # whole channels fit: as many as a chunk holds
            per = max(1, step // len(slices))
            starts = [(slice(ch, min(ch + per, c)), 0) for ch in range(0, c, per)]
            step = len(slices)
        else:
            starts = [(slice(ch, ch + 1), i) for ch in range(c) for i in range(0, len(slices), step)]
        for one, i in reversed(starts) if reverse else starts:
            part = slices[i : i + step]
            up = None if coarser is None else self.coarser_at(k, coarser[one], part)
            yield one, i, z[one, part].reshape(-1, h, w), up, previous_slices(z[one], part)

    def context_chunks(self, k: int, z: torch.Tensor, coarser: torch.Tensor | None, slices: torch.Tensor | None = None, reverse: bool = False, coder: bool = False):
        """Level k's latents `z` (C, T_k, H, W) under the context model, a chunk at a time:
        (the chunk's range among the (C * S, H, W) grids of time slices `slices` (all if
        None), those grids, mean, log_scale). A chunk is a few slices of one latent channel,
        at most RATE_CHUNK sites, and its context inputs (coarser level, previous slice) are
        gathered for it alone, so memory follows a chunk, not the level (a 1080p level 0 holds
        tens of millions of latents). The coder reads the level this way (the rate estimate
        batches the channels and levels instead: `_gathered_bits`); `reverse` gives the chunks
        last first (the ANS encoder's order), `coder` the coder's evaluation order
        (`ContextModel.params`)."""
        context, level = self.context_of(k)
        n = z.shape[1] if slices is None else len(slices)
        for one, i, grids, up, prev in self._slice_groups(k, z, coarser, slices, self.RATE_CHUNK, reverse=reverse):
            mean, log_scale = context.params(level, grids, up, prev, coder=coder)
            yield slice(one.start * n + i, one.start * n + i + len(grids)), grids, mean, log_scale

    def _window_bits(self, k: int, z: torch.Tensor, coarser: torch.Tensor | None, slices: torch.Tensor | None, window) -> torch.Tensor:
        """Bits of the level-k latents that `window` reads (the cells its resize taps touch),
        scaled to the level's area. Their context is computed on a crop one cell wider (the
        neighbours; two up and sideways for a raster context), starting at even coordinates
        so the checkerboard keeps its parity."""
        cfg = self.config
        c, t, h, w = z.shape
        _, _, (r0, r1, c0, c1) = window_taps(cfg, h, w, window)
        m = 2 if cfg.raster else 1  # the raster neighbourhood reaches two cells up and sideways
        R0, C0 = max(r0 - m, 0) & ~1, max(c0 - m, 0) & ~1
        R1, C1 = min(r1 + 1, h), min(c1 + m, w)
        sl = (torch.arange(t) if slices is None else slices).to(z.device)
        grids = z[:, sl, R0:R1, C0:C1]
        up = self.coarser_at(k, coarser, sl, (R0, R1), (C0, C1))
        prev = previous_slices(z, sl, (R0, R1), (C0, C1))
        grids = grids.reshape(-1, R1 - R0, C1 - C0)
        mean, log_scale = self.context.params(k, grids, up, prev)
        inner = (slice(None), slice(r0 - R0, r1 - R0), slice(c0 - C0, c1 - C0))
        return laplace_bits(grids[inner], mean[inner], log_scale[inner]) * (h * w / ((r1 - r0) * (c1 - c0)))

    def coarser_at(self, k: int, coarser: torch.Tensor | None, slices: torch.Tensor | None = None, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None) -> torch.Tensor | None:
        """Level k+1's latents at level k's sites, (C * S, rows, cols), for time slices
        `slices` (all if None) and a row/column range (all if None); with
        `config.coarse_context`, (5, C * S, rows, cols): that value and its four neighbours in
        the coarser grid (on the tuning image, Bunny frame 120 at 0.5 bpp, a context network
        refitted to fixed latents coded them in 3.4 % fewer bits with them). Nearest neighbour by
        integer indexing (F.interpolate's 'nearest' rule): exact, no float maths to drift
        between encoder and decoder, and only the sites asked for are gathered. (Gathers in
        this model use `index_select`: its backward, an index_add, is twice as fast on CPU as
        advanced indexing's accumulating index_put, which was a tenth of a training step.)"""
        if coarser is None:
            return None
        c, t, h, w = self.latents[k].shape
        coarser = coarser[:c]  # a luma-only level (`luma_levels`) reads the coarser luma grid
        _, tc, hc, wc = coarser.shape
        dev = coarser.device
        sl = torch.arange(t, device=dev) if slices is None else slices.to(dev)
        (r0, r1), (c0, c1) = rows or (0, h), cols or (0, w)
        it = nearest_index(t, tc, sl)
        iy = nearest_index(h, hc, torch.arange(r0, r1, device=dev))
        ix = nearest_index(w, wc, torch.arange(c0, c1, device=dev))
        z = coarser.index_select(1, it)
        if not self.config.coarse_context:
            return z.index_select(2, iy).index_select(3, ix).reshape(-1, r1 - r0, c1 - c0)
        # the co-located value, then the coarse grid's (y-1, x), (y+1, x), (y, x-1), (y, x+1):
        # zero outside it, like the level's own neighbours
        z = F.pad(z, (1, 1, 1, 1))
        out = [z.index_select(2, iy + 1 + dy).index_select(3, ix + 1 + dx) for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))]
        return torch.stack(out).reshape(5, -1, r1 - r0, c1 - c0)

    def slices_for(self, k: int, idx: torch.Tensor) -> torch.Tensor:
        """The (lower, upper) latent time slices frames `idx` interpolate between, (2, B)."""
        f = time_factor(self.config, k)
        tk = self.latents[k].shape[1]
        pos = ((idx.float() + 0.5) / f - 0.5).clamp(0, tk - 1)
        lo = pos.floor().long()
        return torch.stack([lo, (lo + 1).clamp_max(tk - 1)])

    # ---------------------------------------------------------------- synthesis
    def upsampled(self, idx: torch.Tensor, latents: list[torch.Tensor], window: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """(B,) frame indices -> (B, F, H, W) features, or (B, F, y1-y0, x1-x0) of a `window`
        (y0, y1, x0, x1): then only the latents the window reads are touched. F is the levels'
        channels (`level_shapes`), plus C for the residual. `latents` holds every coded tensor, in `coded`'s order."""
        cfg = self.config
        levels = [z if g == 1 else z * g for z, g in zip(latents[: cfg.levels], level_gains(cfg))]
        if (self.motion_latents is not None or self.residual_latents is not None) and window is not None:
            raise ValueError("a grid with per-frame tensors (motion fields, residual) renders whole frames")
        if self.motion_latents is not None:
            feats = self.compensated(idx, levels, latents[cfg.levels])
        else:
            feats = torch.cat([self.level_features(k, z, idx, window) for k, z in enumerate(levels)], dim=1)
        if self.residual_latents is None:
            return feats
        r = latents[-1].index_select(1, idx).transpose(0, 1)  # (B, C, rows, cols)
        return torch.cat([feats, F.interpolate(r, size=(cfg.height, cfg.width), mode="bilinear", align_corners=False)], dim=1)

    def compensated(self, idx: torch.Tensor, levels: list[torch.Tensor], motion: torch.Tensor) -> torch.Tensor:
        """Features of frames `idx` with motion: each level's lower and upper slice sampled
        where the frame's fields say its content was (bilinear, so upsampling and warping are
        one op), then blended by time as without motion. Every level shares the fields, in
        pixels of the frame (validate() keeps every level on the level-0 slices)."""
        cfg = self.config
        m = motion.index_select(1, idx).transpose(0, 1) * MOTION_STEP  # (B, 4, rows, cols)
        towards = [sampling_grid(m[:, :2], cfg.height, cfg.width), sampling_grid(m[:, 2:], cfg.height, cfg.width)]
        lo, hi = self.slices_for(0, idx)  # validate(): every level on the level-0 slices
        a = self.blend_weight(0, idx)[:, None, None, None]
        # frames that read an upper slice at all (the others' upper share is exactly zero: not
        # computed); all of them when shapes are checked on the meta device, which has no values
        both = None if a.is_meta else torch.nonzero(a.flatten() > 0).flatten()
        feats = []
        for z in levels:
            x = warp(z.index_select(1, lo).transpose(0, 1), towards[0]) * (1 - a)
            if both is None:
                x = x + warp(z.index_select(1, hi).transpose(0, 1), towards[1]) * a
            elif both.numel():
                x = x.index_add(0, both, warp(z.index_select(1, hi[both]).transpose(0, 1), towards[1][both]) * a[both])
            feats.append(x)
        return torch.cat(feats, dim=1)

    def blend_weight(self, k: int, idx: torch.Tensor) -> torch.Tensor:
        """(B,) weight of the upper slice of level k at frames `idx` (0 where both are one)."""
        f = time_factor(self.config, k)
        lo, _ = self.slices_for(k, idx)
        return ((idx.float() + 0.5) / f - 0.5).clamp(0, self.latents[k].shape[1] - 1) - lo.float()

    def level_features(self, k: int, z: torch.Tensor, idx: torch.Tensor, window: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """Level k's latents `z` (C, T_k, h, w) at frames `idx`, interpolated in time and
        upsampled to the frame (or `window`): (B, C, H, W)."""
        cfg = self.config
        H, W = cfg.height, cfg.width
        y0, y1, x0, x1 = window if window is not None else (0, H, 0, W)
        lo, hi = self.slices_for(k, idx)
        a = self.blend_weight(k, idx)[None, :, None, None]
        h, w = z.shape[-2:]

        def in_time(zc: torch.Tensor) -> torch.Tensor:  # (C, T_k, h', w') -> (B, C, h', w') at the frames
            if zc.shape[1] == 1:  # one slice (an image): every frame reads it as it is
                return zc.transpose(0, 1).expand(idx.numel(), *zc.shape[:1], *zc.shape[2:])
            return (zc.index_select(1, lo) * (1 - a) + zc.index_select(1, hi) * a).transpose(0, 1)

        if (h, w) == (H, W):
            return in_time(z[:, :, y0:y1, x0:x1])
        cubic = bool(cfg.upsample)
        if window is None:
            if cubic:  # rows, then columns, as matrix products (`resize_matrix`)
                return torch.matmul(torch.matmul(self._resize(H, h, z), in_time(z)), self._resize(W, w, z).T)
            return F.interpolate(in_time(z), size=(H, W), mode="bilinear", align_corners=False)
        ty, tx, (r0, r1, c0, c1) = window_taps(cfg, h, w, window)  # on the CPU (even under a meta default device): read as ints
        ty, tx = tuple(v.to(z.device) for v in ty), tuple(v.to(z.device) for v in tx)
        whole_rows = (x0, x1) == (0, W)
        rows = _apply_taps(in_time(z[:, :, r0:r1] if whole_rows else z[:, :, r0:r1, c0:c1]), ty, r0, -2)
        if not whole_rows:
            return _apply_taps(rows, tx, c0, -1)
        # a band of whole rows: its columns through torch's own resize, or the cubic matrix
        if cubic:
            return torch.matmul(rows, self._resize(W, w, z).T)
        out = F.interpolate(rows.reshape(-1, 1, w), size=W, mode="linear", align_corners=False)
        return out.reshape(*rows.shape[:-1], W)

    def _resize(self, n_out: int, n_in: int, like: torch.Tensor) -> torch.Tensor:
        """The bicubic `resize_matrix(n_out, n_in, True)` in `like`'s dtype and device, kept
        per model (a handful of sizes: one per level and axis)."""
        key = (n_out, n_in, like.dtype, like.device)
        m = self._resize_matrices.get(key)
        if m is None:
            m = self._resize_matrices[key] = resize_matrix(n_out, n_in, True).to(like)
        return m

    def synthesize(self, feats: torch.Tensor) -> torch.Tensor:
        """The per-pixel MLP on (B, F, H, W) features, then the refinement. The MLP runs as
        (out, F) x (F, H*W) products on each frame's channels-first view: the features come
        concatenated along channels, so that view is free, where the pixels-first one is a
        copy, and its backward was slower. Same function (equal in float64); interleaved A/B
        on the bundled clip's 0.2 bpp configuration: the MLP and refinement forward and
        backward 29.6 -> 26.5 ms; a whole training step, rate included, 86.4 -> 81.8 and
        101.1 -> 96.7 ms in two runs (medians of 12, session 28).
        The refinement's 3x3 convs want channels-last (at 3 channels they ran forward and
        backward twice as slow in NCHW)."""
        b, c, h, w = feats.shape
        x = channels_first(self.synthesis, feats.reshape(b, c, h * w))
        return self.refined(x.view(b, -1, h, w).contiguous(memory_format=torch.channels_last))

    def refined(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.refine:
            x = x + conv(torch.relu(x))
        return x

    RENDER_PIXELS: ClassVar[int] = 1 << 19  # pixels a no-grad render band holds features for
    SYNTHESIS_PIXELS: ClassVar[int] = 1 << 15  # pixels of a band the synthesis MLP runs on at once

    def forward(self, idx: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        latents = self.quantized()
        cfg = self.config
        rows = max(1, self.RENDER_PIXELS // (idx.numel() * cfg.width))
        if torch.is_grad_enabled() or rows >= cfg.height or cfg.motion or cfg.residual:
            return self.synthesize(self.upsampled(idx, latents))
        # Large frames without gradients: features and the per-pixel MLP band by band of whole
        # rows (a 1080p frame's features alone are 174 MB, its hidden layers twice that); the
        # 3-channel output whole for the 3x3 refinement. A band's rows come from their
        # bilinear taps and its columns from torch's own resize (gathering columns by their
        # taps too was 3x slower).
        # The MLP itself runs SYNTHESIS_PIXELS at a time, so that its 24-wide hidden layers
        # stay in cache: a 1080p frame rendered in 0.86 s, its MLP's ReLUs and copies over
        # whole bands (50 MB each) a third of that.
        x = torch.empty(idx.numel(), cfg.height, cfg.width, cfg.out_dim, device=idx.device)
        sub = max(1, self.SYNTHESIS_PIXELS // (idx.numel() * cfg.width))
        for y in range(0, cfg.height, rows):
            band = self.upsampled(idx, latents, (y, min(y + rows, cfg.height), 0, cfg.width))
            for r in range(0, band.shape[2], sub):
                r1 = min(r + sub, band.shape[2])
                x[:, y + r : y + r1] = self.synthesis(band[:, :, r:r1].permute(0, 2, 3, 1))
        return self.refined(x.permute(0, 3, 1, 2))

    # ---------------------------------------------------------------- analysis start
    @torch.no_grad()
    def init_from_frames(self, frames: torch.Tensor, step: float = 1 / 64) -> None:
        """Start from a decodable picture instead of from zero: a Laplacian pyramid of the
        signal in YCbCr, in units of `step`, and a synthesis that sums the levels and converts
        to RGB (exactly, through ReLU pairs), so the first step already reconstructs the
        signal and training spends its budget on rate and detail rather than on discovering
        the picture. With a few hundred CPU steps this is the difference between a blur and a
        picture; from zero, Cool-chic needs tens of thousands of GPU steps.

        frames: (T, C, H, W) in [0, 1]. Needs latent_channels == out_dim == 3, two hidden
        layers of width >= 6; otherwise the latents stay at zero."""
        cfg = self.config
        if cfg.latent_channels != 3 or cfg.out_dim != 3 or cfg.hidden_layers < 1 or cfg.hidden < 6:
            return
        source = frames
        if self.motion_latents is not None:
            frames = self._start_motion(frames)
        # Streamed over frames, so memory follows a level's latents, not the clip: every
        # level's time-slice sums of the pooled signal first, then, coarsest level first, its
        # latents (those sums minus what the coarser levels already reconstruct, pooled the
        # same way: pooling and time averaging are linear) and its reconstruction's share of
        # every finer level's sums. The last slice of a level counts the last frame again for
        # each frame it lacks (its residual repeated), as a whole-clip pyramid would.
        shapes = [z.shape for z in self.latents]
        sums = [torch.zeros(sh, device=frames.device) for sh in shapes]  # (3, T_k, h_k, w_k)
        recon = [torch.zeros(sh, device=frames.device) for sh in shapes]

        def spread(image: torch.Tensor, idx: torch.Tensor, into: list[torch.Tensor], levels) -> None:
            """Add (B, 3, H, W) frames `idx`, pooled, to the time slices of `levels` (finest
            first) in `into`. A level whose cells tile both the frame and the finer level's
            cells is pooled from the finer level (the same averages): pooling every level from
            the frame took 7 s of a 12-frame 1080p GOP's start."""
            src, (H, W) = image, image.shape[-2:]
            for j in levels:
                f, (c, t, h, w) = time_factor(cfg, j), shapes[j]
                sh, sw = src.shape[-2:]
                if (sh, sw) != (h, w):
                    tiled = H % sh == 0 and W % sw == 0 and sh % h == 0 and sw % w == 0
                    src = F.avg_pool2d(src, (sh // h, sw // w)) if tiled else F.adaptive_avg_pool2d(image, (h, w))
                pooled = src[:, :c].transpose(0, 1)  # (C_j, B, h, w): luma-only levels take Y
                weight = torch.ones(idx.numel(), device=image.device)
                weight[idx == cfg.frames - 1] += t * f - cfg.frames
                into[j].index_add_(1, idx // f, pooled * weight[None, :, None, None])

        batch = self.render_batch(cfg.frames, cfg.height, cfg.width)
        chunks = [torch.arange(i, min(i + batch, cfg.frames), device=frames.device) for i in range(0, cfg.frames, batch)]
        to_ycc = _RGB_TO_YCC.to(frames.device)
        for idx in chunks:
            ycc = torch.einsum("ij,tjhw->tihw", to_ycc, frames[idx].float())
            ycc[:, 0] -= 0.5
            spread(ycc, idx, sums, range(cfg.levels))
        scales = start_scales(cfg)
        for k in reversed(range(cfg.levels)):
            f = time_factor(cfg, k)
            z = (sums[k] - recon[k]) / f / (step * scales[k])
            self.latents[k].copy_(z)
            if k:
                for idx in chunks:
                    spread(self.level_features(k, z * step * scales[k], idx), idx, recon, range(k))
        # synthesis: rows 0-2 = RGB of the summed levels, rows 3-5 = its negative; ReLU keeps
        # both halves; the last layer subtracts them back. Other units start silent.
        first, last = self.synthesis[0], self.synthesis[-1]
        to_rgb = _YCC_TO_RGB.to(first.weight) * step
        for layer in self.synthesis:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(0.1)
                layer.bias.zero_()
        first.weight[:6].zero_()
        start = 0
        for c in [shape[0] for shape in shapes] + [cfg.latent_channels] * bool(cfg.residual):  # the residual's inputs add like a level's
            first.weight[0:3, start : start + c] = to_rgb[:, :c]
            first.weight[3:6, start : start + c] = -to_rgb[:, :c]
            start += c
        first.bias[0:3] = 0.5
        first.bias[3:6] = -0.5
        for layer in list(self.synthesis)[2:-1]:
            if isinstance(layer, nn.Linear):
                layer.weight[:6].zero_()
                layer.weight[:, :6].zero_()
                layer.weight[:6, :6] = torch.eye(6)
        last.weight.zero_()
        last.weight[:, 0:3] = torch.eye(3)
        last.weight[:, 3:6] = -torch.eye(3)
        self.init_step = step
        if self.residual_latents is not None:
            self._start_residual(source, step)
        self._fit_rate_model()

    @torch.no_grad()
    def _start_residual(self, frames: torch.Tensor, step: float) -> None:
        """Each frame's error under the start, in YCbCr, pooled to the residual's cells, in
        units of `step`: what the slices miss of that frame (a shape that changes between
        them), which the rate term then keeps only where it pays. Started at zero instead,
        a residual latent must cross the rounding threshold against the rate term on its own,
        and on the tuning clips the residual either stayed at zero or, learning faster, ran
        the rate away."""
        cfg = self.config
        to_ycc = _RGB_TO_YCC.to(frames.device)
        batch = self.render_batch(cfg.frames, cfg.height, cfg.width)
        for i in range(0, cfg.frames, batch):
            idx = torch.arange(i, min(i + batch, cfg.frames), device=frames.device)
            err = torch.einsum("ij,tjhw->tihw", to_ycc, frames[idx].float() - self(idx))
            pooled = F.adaptive_avg_pool2d(err, self.residual_latents.shape[-2:])
            self.residual_latents[:, i : i + len(idx)] = pooled.transpose(0, 1) / step

    @torch.no_grad()
    def _start_motion(self, frames: torch.Tensor) -> torch.Tensor:
        """Block-matched motion fields (each frame against the frame nearest each of its two
        slices' times) and the frames moved back onto the slice each is pooled into, so the
        pyramid the start builds holds sharp slices instead of double exposures. A field a
        frame does not use (its upper slice where both are one) stays zero: it costs nothing."""
        cfg = self.config
        t, _, height, width = frames.shape
        luma = torch.einsum("j,tjhw->thw", _RGB_TO_YCC[0].to(frames.device), frames.float())
        f, slices = time_factor(cfg, 0), self.latents[0].shape[1]
        nearest = [min(t - 1, round((s + 0.5) * f - 0.5)) for s in range(slices)]  # frame at each slice's time
        idx = torch.arange(t, device=frames.device)
        (lo, hi), a = self.slices_for(0, idx), self.blend_weight(0, idx)
        motion = torch.zeros(motion_shape(cfg), device=frames.device)
        gain = torch.zeros(2, *motion.shape[1:], device=frames.device)  # squared error each vector removes
        for i in range(t):
            for r, (ref, weight) in enumerate(((nearest[lo[i]], 1 - a[i]), (nearest[hi[i]], a[i]))):
                if weight > 0:
                    d = torch.round(block_match(luma[ref], luma[i], cfg.motion) / MOTION_STEP) * MOTION_STEP
                    motion[2 * r : 2 * r + 2, i] = d / MOTION_STEP
                    gain[r, i] = block_gain(luma[ref], luma[i], d, cfg.motion) * weight  # the blend weighs the slice's share
        self.motion_latents.copy_(motion)
        self.motion_gain = gain  # what `retarget` weighs against the vectors' bits
        own = (idx // f != lo).long()  # frame i is pooled into slice i // f: its lower or upper one
        fields = motion[:, idx].transpose(0, 1).reshape(t, 2, 2, *motion.shape[-2:])[idx, own] * MOTION_STEP
        aligned = torch.empty_like(frames, dtype=torch.float32)
        batch = self.render_batch(t, height, width)
        for i in range(0, t, batch):
            part = slice(i, min(i + batch, t))
            aligned[part] = warp(frames[part].float(), sampling_grid(fields[part], height, width, sign=1.0))
        return aligned

    @torch.no_grad()
    def _prune_motion(self, step: float) -> float:
        """Zero the start's motion vectors that do not pay for their bits at latent step
        `step` and return the fields' bits (`empirical_bits`). A vector stays where the
        squared error it removed in the start exceeds lambda x its bits, lambda the slope the
        encoder starts from at that step (2 step^2 ln2 / 6). Block matching alone spent half of
        a 0.1 bpp budget on the fields (carphone, 176x144) and lost 2.5 dB there."""
        m = self.motion_latents
        gain = getattr(self, "motion_gain", None)
        if gain is not None:
            lam = MOTION_PRUNE * 2 * step**2 * math.log(2) / 6
            for r in range(2):
                fields = m[2 * r : 2 * r + 2]
                fields.mul_(gain[r].to(fields.device) > lam * vector_bits(fields))  # (the start may have run on another device)
        return empirical_bits(m)

    @torch.no_grad()
    def _fit_rate_model(self) -> None:
        """Per-level Laplace scales from the latents' own spread, so the first rate estimate
        is not wildly off. (The scales that code the start in the fewest bits, `fit_rate_scales`,
        were tried here too: right for a fit too short to train its context model, but
        Bunny's 30 s points lost 1-2.3 dB with them, their training paced by a rate term that
        no longer overprices the stray +-1s; the encoder fits them at the end, if that helps.)"""
        self._set_rate_scales(lambda q: torch.log(q.abs().mean().clamp_min(0.05)))

    def _set_rate_scales(self, log_scale: Callable[[torch.Tensor], torch.Tensor | float]) -> None:
        """Each level's Laplace log-scale (and `per_frame()`'s) from its rounded latents."""
        for k, z in enumerate(self.latents):
            self.context.level_bias[k, 1] = log_scale(torch.round(z))
        for z, context in self.per_frame():
            context.level_bias[0, 1] = log_scale(torch.round(z))

    @torch.no_grad()
    def fit_rate_scales(self) -> Callable[[], None]:
        """Set each level's Laplace scale (and `per_frame()`'s) to the one that codes its
        rounded latents in the fewest bits (`best_log_scale`); returns an undo. The mean
        magnitude `_fit_rate_model` starts from prices a lone +-1 among zeros at ~15 bits:
        a fit too short to train its context model (a 1080p GOP) pays up to twice the
        entropy under it."""
        biases = [self.context.level_bias, *(context.level_bias for _, context in self.per_frame())]
        saved = [b.detach().clone() for b in biases]
        self._set_rate_scales(best_log_scale)

        def undo() -> None:
            with torch.no_grad():
                for b, old in zip(biases, saved):
                    b.copy_(old)

        return undo

    @torch.no_grad()
    def coarsen(self, factor: float) -> None:
        """Multiply the latent step by `factor`: the levels and the residual shrink by it (the
        motion fields, in pixels, do not), the synthesis' first layer, linear in them, grows
        by it, so the picture changes only by the coarser rounding; the rate model's scales
        shrink with the latents. How a fit too short for lambda control to reach its rate still writes
        a file at its target (`grid_codec.settle_rate`)."""
        for z in self.in_steps():
            z.div_(factor)
        self.synthesis[0].weight.mul_(factor)
        self.context.level_bias[:, 1] -= math.log(factor)
        if self.residual_latents is not None:
            self.residual_context.level_bias[:, 1] -= math.log(factor)
        if getattr(self, "init_step", None) is not None:
            self.init_step *= factor

    @torch.no_grad()
    def retarget(self, bpp: float, pixels: int) -> float:
        """Re-quantize the analysis start for a rate: pick the latent step whose rounded
        pyramid (and residual) costs about `bpp` (empirical entropy per level and channel: a
        slight overestimate of what the context model will pay) and rescale the synthesis so the
        decoded picture is unchanged but for rounding. Returns the step. A start at the
        right rate leaves the whole budget for rate-distortion training instead of first
        shedding ten times the target rate."""
        old = getattr(self, "init_step", None)
        if old is None:
            return float("nan")
        scaled = self.in_steps()
        scales = start_scales(self.config)
        cont = [z * old * s for z, s in zip(scaled, scales)]

        def rate(step: float) -> float:
            return sum(empirical_bits(z / (step * s)) for z, s in zip(cont, scales)) / pixels

        def solve(bpp: float) -> float:
            lo, hi = math.log(2.0**-10), math.log(0.5)  # rate falls as the step grows
            for _ in range(14):
                mid = 0.5 * (lo + hi)
                if rate(math.exp(mid)) > bpp:
                    lo = mid
                else:
                    hi = mid
            return math.exp(hi)

        def left() -> float:  # what the motion fields leave the latents
            if self.motion_latents is None:
                return bpp
            return max(bpp - empirical_bits(self.motion_latents) / pixels, 0.5 * bpp)

        step = solve(bpp)
        if self.motion_latents is not None:
            # the fields' bits come out of the same budget: prune them at the step the latents
            # would get alone, give the latents what is left, prune again at their coarser step
            self._prune_motion(step)
            step = solve(left())
            self._prune_motion(step)
        if self.residual_latents is not None:  # the start's residual values under the dead zone dropped, then re-solved
            cont[-1].mul_(cont[-1].abs() >= RESIDUAL_DEADZONE * step)
            step = solve(left())
        for z, c, s in zip(scaled, cont, scales):
            z.copy_(c / (step * s))
        self.synthesis[0].weight.mul_(step / old)
        self.init_step = step
        self._fit_rate_model()
        return step


def _adapt(cfg: GridConfig, signal) -> GridConfig:
    if signal.kind == "image":
        h, w = signal.spatial_shape
        t = 1
    else:
        t, h, w = signal.spatial_shape
    levels = max(1, min(cfg.levels, int(math.log2(max(2, min(h, w)))) - 1))
    cfg = dataclasses.replace(cfg, frames=t, height=h, width=w, out_dim=signal.channels, levels=levels, coarse_context=1, level_gain=1)
    if t == 1 and h * w <= RASTER_MAX_PIXELS:
        cfg = dataclasses.replace(cfg, raster=1)
    if t == 1:
        cfg = dataclasses.replace(cfg, upsample=UPSAMPLE_CUBIC)
    if per_frame_fits(t, h, w):
        cfg = dataclasses.replace(cfg, motion=MOTION_CELL, residual=RESIDUAL_CELL)
    return with_time_structure(cfg, None)


def with_time_structure(cfg: GridConfig, bpp: float | None) -> GridConfig:
    """`cfg` with the temporal layout `video_time_structure` picks for its length and rate."""
    time_base, time_growth = video_time_structure(cfg.frames, bpp, motion=bool(cfg.motion))
    temporal = int(cfg.frames > time_base)  # more than one latent slice per level: a previous slice to read
    return dataclasses.replace(cfg, time_base=time_base, time_growth=time_growth, temporal=temporal)


# Below this rate an image's finest level is half its resolution (`GridConfig.finest` = 1).
# There a full-resolution level ends up empty (the 256x256 still of the image report at 0.27
# bpp: 2 bytes of 2,199, no non-zero latent; at 0.51 bpp 14 bytes) but is three quarters of
# the latents a training step prices and upsamples: without it a 60 s fit takes 1.45-1.9x the
# steps. Measured at 60 s on the tuning crops (256x256, Bunny frames 120 / 70), one run each,
# decoded PSNR: at 0.25 bpp 25.75 dB at 0.244 bpp against 25.79 at 0.256 / 26.39 at 0.242
# against 26.01 at 0.254; at 0.5 bpp 28.20 at 0.485 against 28.41 at 0.511 / 28.88 at 0.491
# against 29.16 at 0.511 (a wash once the rates are matched); two smoother crops at native
# resolution (frames 20 and 100, a bunny's fur and a rock, like the report's still), at 0.25
# bpp: 34.68 at 0.252 against 34.34 at 0.256 / 46.09 at 0.295 against 46.20 at 0.297 (the
# second over its rate either way: too flat a crop for 0.25 bpp). At 1 bpp level 0 holds a third of
# the latents' bits. Videos keep it: at 0.05 bpp on the tuning clips (Bunny 96-127, carphone
# 60-91) it gained 0.3-0.6 dB in 30 s fits but nothing in 60 s, and overshot its rate by 16 %.
# At 1080p too, though its full-resolution level is all but empty there (a 12-frame GOP at
# 0.02 bpp: 0.01 % non-zero, three quarters of the latents): the first 24 frames of Bunny at
# 1920x1080, `--bpp 0.02 --seconds 120 --gop 12`, trained 118 / 133 steps a GOP with a finest
# level of half / a quarter of the resolution against 19, yet decoded to 22.44 / 22.29 dB at
# 0.020 / 0.021 bpp against 22.97 at 0.020 (both ended 65-130 % over their rate and were
# settled: SETTLE_FAR).
# With bicubic upsampling (UPSAMPLE_CUBIC), moving the threshold to 0.6 bpp mixed at 0.5 bpp:
# frame 20 34.12 dB at 0.515 vs 33.80 at 0.509, frame 120 31.56 at 0.515 vs 31.45 at 0.511,
# frame 95 (smooth, 48 dB) 47.86 at 0.540 vs 48.53 at 0.542; at 1 bpp a half-resolution
# finest level lost 3 dB (frame 70: 33.60 at 1.060 vs 36.55 at 1.014). Kept at 0.4.
FINEST_IMAGE_BPP = 0.4

# An image's levels are upsampled bicubically (`GridConfig.upsample` 1): a coarse level then
# draws a smooth gradient where bilinear draws facets that finer levels must pay to mend.
# Measured at 60 s on the tuning crops (256x256; Bunny frame 70 scaled to 640x360, frames 20
# and 95 at native resolution: grass, a smooth flank), decoded PSNR against bilinear, one run
# each: frame 70 at 1 bpp 36.55 dB at 1.014 bpp vs 36.31 at 1.015; frame 20 at 0.5 bpp 33.80
# at 0.509 vs 33.71 at 0.512; frame 95 at 0.25 bpp 46.23 at 0.279 vs 45.89 at 0.293. As
# matrix products (`resize_matrix`) it also trains faster than torch's bilinear kernel did
# (1032 / 898 / 1527 steps vs 898 / 866 / 1117); torch's own bicubic kernel trained 587 /
# 604 / 599 steps and lost on frame 70 (36.17 at 1.019), tied on frame 20 (33.65 at 0.505),
# won on frame 95 (46.37 at 0.297). Videos keep
# bilinear: each level upsampled bicubically and then warped at full resolution, 60 s at 0.2
# bpp on the tuning clips, Bunny 96-127 33.17 dB at 0.207 vs 33.65 at 0.202, carphone 60-91
# 33.03 at 0.197 vs 33.15 at 0.198. (Same session, with bicubic: a 16-wide context network for
# images instead of 8 lost on frames 70 / 20, 36.39 at 1.023 / 33.73 at 0.512.)
UPSAMPLE_CUBIC = 1

# Pixels per motion-field cell of a new encode. Block matching on the tuning clip (Bunny
# 96-127, one slice per 8 frames) put the ceiling at 35.8 dB with 8-pixel cells, 34.0 with 16
# (29.8 blending the slices' frames in place); trained for 60 s at 0.2 bpp with the fields
# not paid for, 32.8 and 31.7 dB vs 30.6 without motion; paid for, 16-pixel cells tied with 8.
MOTION_CELL = 8
# Per-frame residual latents of a new video encode (see __init__): pixels per cell, learning
# rate scale, the rate from which a video gets them, and the dead zone (in latent steps) of
# their analysis start. Measured at 60 s on the tuning clips (Bunny 96-127 at 320x180 /
# carphone 60-91), decoded PSNR against the same code without the residual (32.96 / 32.95 dB
# at 0.2 bpp, 34.81 / 34.85 at 0.4, 30.30 / 29.84 at 0.1):
# - 4-pixel cells started from the analysis (`_start_residual`), no dead zone: +0.95 / +0.13
#   dB at 0.2 bpp, +0.67 / -0.72 and -0.30 at 0.4 (a repeat), +0.07 / -0.27 at 0.1;
# - with a dead zone of one step: +0.52 and +0.94 (a repeat) / +0.06 at 0.2, +0.22 / +0.10
#   at 0.4, +0.09 / -0.42 at 0.1: hence none below RESIDUAL_MIN_BPP. Carphone at 0.4: two
#   steps' dead zone -0.01, 8-pixel cells without one -0.28. Single runs vary by up to
#   0.4 dB. Started at zero instead (a prototype), at 3x the learning rate the residual
#   stayed at zero in three runs of four, and at 10x its zeros drifted across the rounding
#   threshold on carphone: the rate stayed 50 % over for 400 steps while lambda rose 8000-fold, and the
#   fit collapsed (28.2 dB at 0.12 bpp for a 0.2 target). Started from the analysis, 10x
#   ran away the same way on carphone at 0.2 bpp (23.5 dB at 0.071 bpp; Bunny +0.4 dB).
# - after the layout change (one slice per 16 frames at 0.4 bpp, video_time_structure),
#   2-pixel cells at 0.4 bpp: -0.4 / -0.2 dB against 4-pixel ones (Bunny / carphone).
# - 2026-12-03, with 16-pixel motion cells below 0.15 bpp (MOTION_COARSE_BPP) and level_gain,
#   the residual together with the luma-only finest level (LUMA_ONLY_VIDEO_BPP) from lower
#   rates, against neither (same afternoon, 60 s): 0.1 bpp 31.68 at 0.103 / 33.40 at 0.100
#   against 30.39 and 30.62 at 0.100 / 32.01 at 0.093 and 32.41, 32.30 at 0.095 (the luma-only
#   level alone: 30.90 at 0.102 / 32.89 at 0.099); 0.05 bpp 28.52 at 0.052 / 30.50 at 0.048
#   against 27.98 and 27.90 at 0.050 / 30.07 at 0.047; 0.025 bpp (Bunny) 25.29 at 0.024
#   against 25.77 at 0.024: hence from 0.04 bpp. (The residual at 0.1 bpp with 8-pixel motion
#   cells, that afternoon: 30.73 at 0.097 / 31.28 at 0.095 against 30.70 / 31.64, 31.78.)
RESIDUAL_CELL = 4
RESIDUAL_LR_SCALE = 3.0
RESIDUAL_MIN_BPP = 0.04
RESIDUAL_DEADZONE = 1.0
# Inside LUMA_ONLY_VIDEO_BPP (videos) the finest level holds only luma (`GridConfig.luma_levels`
# = 1); an image's finest LUMA_ONLY_IMAGE_LEVELS levels do at every rate. Their chroma grids
# end up sparse or empty (non-zero latents at 60 s: the tuning crop of Bunny frame 70 at 1 bpp
# 0 %, against 11 % of its luma; the tuning clip, Bunny 96-127, at 0.2 bpp 13.5 / 3.6 % for
# Cb / Cr against 51 % of luma) but are two thirds of a level every training step prices and
# upsamples.
# Measured at 60 s on the tuning material, one run each, decoded PSNR with vs without: Bunny
# frame 120 crop at 0.5 bpp 28.52 dB at 0.510 bpp vs 28.41 at 0.511 (1054 vs 817 steps);
# frame 70 crop at 1 bpp 32.05 at 0.997 vs 32.07 at 1.001; Bunny 96-127 at 0.2 bpp 34.63 at
# 0.201 vs 34.21 at 0.197 (509 vs 350 steps); carphone 60-91 at 0.2 bpp 33.37 at 0.200 vs
# 33.24 at 0.199. At 0.1 bpp (no residual latents there) Bunny 96-127 lost: 30.02 at 0.098 vs
# 30.43 at 0.099, and so did the bundled clip (a report's, looked at because its 0.1 bpp
# points ended 13-21 % over their rate: 27.55 at 0.113 vs 28.08 at 0.098 in 60 s), though its
# level-0 chroma ends as empty: a video kept it below 0.15 bpp until 2026-12-03, when with the
# residual and coarser motion cells it paid from 0.05 bpp (at RESIDUAL_MIN_BPP). The upper video limit
# lies between 0.2 bpp, measured, and 0.4, not (where the report's files hold 21 / 8 %
# non-zero chroma at level 0).
# Two luma-only levels against one (images until 2026-12-02: one below 1.5 bpp, none above),
# same code, 60 s, decoded PSNR: crop of frame 120 at 0.5 bpp 31.13 dB at 0.506 vs 30.85 /
# 30.91 at 0.505 / 0.502 (808 vs 656 / 744 steps); frame 70 at 1 bpp 36.31 at 1.019 vs 36.13
# at 1.012; at 2 bpp (against none) 40.63 at 2.063 vs 39.35 at 1.909 (753 vs 346 steps);
# frame 20 at 0.25 bpp 27.48 at 0.255 vs 27.29 at 0.250, its smoother native-resolution crop
# 29.63 at 0.256 vs 29.34 at 0.251. Three: 30.78 at 0.516 on frame 120. Videos with two at
# 0.2 bpp: Bunny 96-127 31.75 at 0.183 vs 32.26 at 0.200, carphone 60-91 32.82 at 0.198 vs
# 32.77 at 0.196: not taken.
LUMA_ONLY_IMAGE_LEVELS = 2
LUMA_ONLY_VIDEO_BPP = (RESIDUAL_MIN_BPP, 0.3)
# x lambda: the bar a start's motion vector must clear (`_prune_motion`). The pixel-domain
# gain of block matching overstates what a vector is worth to a coarse pyramid: on the
# tuning clips (carphone / Bunny) at 0.1 bpp, one slice per 8 frames, 1x gave 28.06 / 27.89 dB
# and 4x 29.05 / 28.70; at 0.4 bpp the two tie (34.53 / 34.27 vs 34.40 / 34.15).
MOTION_PRUNE = 4.0
# Below this rate a video's motion fields have cells of MOTION_COARSE_CELL pixels instead of
# MOTION_CELL. Until 2026-12-03 a video got no fields at all below 0.075 bpp: at 0.05 bpp (carphone
# 60-91, 60 s, an older fit) 8-pixel fields had run away (the zero vectors drifted across the
# rounding threshold, the rate doubled within 8 steps, lambda rose a thousandfold: 21.2 dB at
# 0.032 bpp against 26.2 at 0.053 without). With the fit of that date (rate settling, lambda's
# ceiling, level_gain) no run ran away, and fields paid at every rate tried, coarser ones the
# most. 60 s, decoded PSNR, dB at bpp (tuning clips Bunny 96-127 / carphone 60-91):
# - 0.05 bpp: no fields 27.11 at 0.049 / 28.10 at 0.049 (a faster day; on the slower afternoon
#   below 26.85 at 0.046 / 27.79 at 0.047); that afternoon 8-pixel cells 27.32 at 0.045 / 28.46
#   at 0.042; 16-pixel 27.90 at 0.049 / 30.07 at 0.047; 32-pixel 27.76 at 0.050 / 30.34 at 0.051;
# - 0.025 bpp (Bunny, that afternoon): none 25.09 at 0.023, 16-pixel 25.77 at 0.024, 32-pixel 25.98 at 0.025;
# - 0.1 bpp, runs of one afternoon (a slower machine: ~300 steps where session 19's made ~450):
#   16-pixel cells 30.62 at 0.100 / 32.41 at 0.095 and 32.30 at 0.095 against 8-pixel 30.70 at
#   0.099 / 31.64 and 31.78 at 0.094; 32-pixel 29.70 at 0.101 / 31.10 at 0.091;
# - 0.2 bpp, same afternoon: 16-pixel 34.34 at 0.203 / 34.67 at 0.191 against 8-pixel 34.50 at
#   0.196 / 34.62 at 0.196 (a tie: kept at 8).
MOTION_COARSE_BPP = 0.15
MOTION_COARSE_CELL = 16

# Below this latent rate (bits per pixel) a video's latents get one time slice per 8 frames
# at every level; from it, one per 4 frames at the finest level, doubling at each coarser one.
FINE_TIME_BPP = 0.25


def video_time_structure(frames: int, bpp: float | None = None, motion: bool = False) -> tuple[int, int]:
    """(time_base, time_growth) of a new encode at `bpp` (None: not known, the finer layout).

    Measured at 60 s on two clips the defaults are not reported on (Bunny frames 96-127 at
    320x180 / carphone frames 60-91), PSNR in dB, the doubling from 4 (d4, the layout of the
    files before 2026-11-29) vs one slice per 8 frames at every level (f8):
    0.1 bpp: d4 27.30 / 27.04, f8 28.37 / 28.29; 0.2 bpp: d4 29.48 / 29.62, f8 30.52 / 29.57;
    0.4 bpp: d4 31.46 (at 0.36) / 31.66, f8 31.30 (at 0.38) / 30.59. (One slice per 4 frames
    at every level won once, carphone at 0.2 bpp by 0.6 dB, and lost up to 2.2 dB elsewhere.)
    Few latents train better where bits are scarce; where they are not, temporal detail
    pays. The reports (Bunny 1-32 and carphone 1-32, never used here) said the same when f8
    was tried everywhere: up to 1.5 dB gained below 0.2 bpp, up to 1.2 dB lost at 0.4.

    With `motion` fields (small frames) every level has one slice per 16 frames: the fields
    (and the residual) carry what moves, so fewer slices pay. Same
    clips, carphone / Bunny, dB at 0.1, 0.2, 0.4 bpp: no motion (the layouts above) 28.29 /
    28.37, 29.57 / 30.52, 31.66 / 31.46; f8 with motion 28.06 / 27.89, 32.17 / 31.77, 34.53 /
    34.27; f16 with motion (the start's vectors pruned at 4x lambda) 29.83 / 29.53, 32.84 /
    32.59, 33.74 / 34.00.

    With the per-frame residual latents too (from 0.15 bpp), one slice per 16 frames pays at
    0.4 bpp as well (decoded PSNR, carphone / Bunny, two runs each of f16 against one / two
    of f8): 34.84, 34.73 / 36.29, 36.51 against 34.95 / 35.03, 35.30. One slice per 32 frames
    at 0.2 bpp: 32.92 / 34.01 against 33.01 / 33.48, 33.90 with f16: not taken."""
    if frames == 1:
        return 1, 1
    if motion:
        return min(16, frames), 1
    if bpp is not None and bpp < FINE_TIME_BPP:
        return min(8, frames), 1
    return min(4, frames), 2


def frames_of(signal) -> torch.Tensor:
    """(T, C, H, W) float frames of an image (T = 1) or video signal."""
    data = signal.data if signal.kind == "video" else signal.data[None]
    return data.permute(0, 3, 1, 2).float()

# The entropy models keep the peak learning rate to the end of a fit (`OptimDefaults.steady`).
# Under the decaying rate they lagged the latents and, fitted mostly to the noise proxy,
# were never refitted to the rounded latents of the last quarter: refitted offline to the
# rounded latents of a 40 s, 0.4 bpp encode of the bundled clip (a diagnosis on the report's
# clip; the choice below was made on the tuning clips and crops alone) they coded them in
# 8.3 % fewer bits (motion fields 10 %, residual 15 %, levels 7 %). Held steady (tuning
# clips and crops, 60 s video / 30 s image points, one or two runs each): Bunny 96-127 at
# 0.2 bpp 33.44 / 33.78 dB at 0.194 bpp against 33.57 / 33.48 at 0.199 / 0.202; carphone
# 60-91 33.08 / 33.19 dB at 0.196 / 0.201 against 32.93 / 32.83 at 0.200 / 0.198; the
# image crops' BD-rate vs JPEG -4.3 / -8.7 % against +3.7 (the run before; this one's base
# collapsed to 24.3 dB at 0.3 bpp) / +5.5 %. An offline refit of a steady fit's end gains
# < 1 %. Frames trained on windows (1080p) do without both (`GridTask.optim_defaults`).
# They also learn at CONTEXT_LR_SCALE x the network's rate. Same runs (steady at 1x: crops
# -4.3 / +1.6 % on Bunny 120 (two runs), -8.7 / -8.8 % on Bunny 70; clips 33.79 dB at 0.196
# bpp / 33.11 at 0.198): 3x -4.7 / -12.4 %, clips 33.90 at 0.196 / 32.89 at 0.192; 10x
# -9.4 / -5.2 %, clips 33.67 at 0.204 / 32.91 at 0.200. 3x: the images gain, the clips are
# inside their spread.
CONTEXT_MODELS = ("context.", "motion_context.", "residual_context.")
CONTEXT_LR_SCALE = 3.0


register(
    ModelSpec(
        name="grid",
        config_cls=GridConfig,
        model_cls=LatentGrid,
        signals=("image", "video"),
        description="Cool-chic/C3: quantized latent grid pyramid + tiny synthesis, trained for rate and distortion",
        optim=OptimDefaults(lr=1e-2, lr_scales=(("latents.", 10.0), ("motion_latents", 10.0), ("residual_latents", RESIDUAL_LR_SCALE), *((m, CONTEXT_LR_SCALE) for m in CONTEXT_MODELS)), steady=CONTEXT_MODELS, late=LatentGrid.side_tensors, fast=FAST["grid"], paper=PAPER["grid"]),
        adapt=_adapt,
        width_field="hidden",
    )
)
