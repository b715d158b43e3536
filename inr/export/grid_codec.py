"""The latent-grid codec: rate-distortion training, rate control inside one fit, and the
LATS section that carries the latents.

Training minimises MSE + lambda * bpp, with bpp the context model's estimate of the latent
bits per pixel. Quantization is trained in the way C3 and Cool-chic do it: uniform noise as
a differentiable proxy for most of the budget, then straight-through rounding so the
network adapts to the integers the file will hold. With a `--bpp` target, lambda is steered
during the fit from the measured rate (no refits), and the network's bit depth is chosen at
the end by rate-distortion on the decoded output.

Coding order (docs/bitstream.md, section LATS): levels coarsest first; within a level, all
anchors ((y + x) even) of all its grids, then all the others, each pass one vectorised call
to constriction's ANS coder with per-symbol Laplace parameters.

The rate-aware machinery is shared with the other rate-aware family (`shacira`, whose codec
is `inr/export/shacira_codec.py`): `RateTask` (lambda, its steering, the quantization proxy),
the ANS Laplace helpers (`ans_encode` / `ans_decode`) and `encode_rate_aware`, the whole
encoder, which asks a family for the few hooks its docstring lists.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import constriction
import numpy as np
import torch
import torch.nn.functional as F

from inr.bitstream import BitstreamError
from inr.device import synchronize, torch_threads
from inr.errors import InrError
from inr.export import netcode
from inr.export.entropy import ans_bytes, ans_decoder, ans_finish
from inr.fit import FitState
from inr.metrics import mse_to_psnr
from inr.models.grid import IMAGE_NOISE_FRACTION, LatentGrid, checkerboard, frames_of, raster_passes
from inr.models.registry import OptimDefaults

STEER_EVERY = 8  # steps between rate measurements for lambda control
LAMBDA_MAX = 10.0
# Anti-windup: how far above a known start (the quantizer's slope, encode_rate_aware) lambda
# control may go. The first ~200 steps measure the start's rate under a context model still
# learning it, well over the target (car60 at 0.1 bpp: 0.25 bpp of latents for 0.085), so
# lambda climbed 25x, the latents were squeezed to 0.067 and climbed back too slowly: files
# 5-12 % under at 0.1 bpp. With the ceiling (it binds only at 0.1 bpp on the tuning clips, at
# 300 steps and at 60 s), car60 / bunny96 at 0.1 bpp: 0.089 / 0.091 -> 0.094 / 0.093 bpp at
# 300 steps (28.56 -> 28.90 / 29.38 -> 29.26 dB), and 0.093 -> 0.098 bpp (+0.58 dB) for
# bunny96 at 60 s in a first form that also had a floor; elsewhere the runs are within their
# spread (+-0.3 dB between repeats of one setting). No floor: at 0.4 bpp a floor of start / 8
# bound and cost bunny96 0.35 dB.
LAMBDA_WINDUP = 8.0
# Steps' worth of the latents' learning rate the straight-through phase gets, however long it
# is (`RateTask.late_lr_factor`). Under rounding a latent's gradient no longer averages out
# over noise: Adam moves every latent at its full rate towards the next rounding threshold, and
# over a long phase the zeros cross it. On the tuning image (Bunny frame 120, 256x256, 0.5 bpp)
# a 120 s fit reached 28.58 dB at 0.40 bpp of latents by the end of its noise phase, then in
# 480 straight-through steps its rate rose 8 %, lambda control quadrupled lambda and the file
# ended at 27.56 dB at 0.450 bpp (30 s: 28.15 dB at 0.506; 240 s: 27.08 at 0.437; longer fits
# were worse). With this budget (a factor 0.18 there): 28.57 dB at 0.503 (0.1 throughout:
# 28.84 at 0.511); frame 70 at 1 bpp, 60 s: 32.07 dB at 1.001 against 31.70 at 0.952. Bunny
# 96-127 at 60 s has about 100 such steps (factor 1: unchanged; carphone 60-91, smaller
# frames, about 220); at 0.2 bpp, 120 s: 35.11 dB at 0.204 against 35.30 at 0.206, one run
# each. The clips' rounded PSNR jumps 2 dB in that phase, so it stays at the end (a switch
# at half the budget lost 0.9-1.4 dB: Bunny 96-127 at 60 and 120 s, carphone 60-91 at 60 s).
# The held-out carphone clip (small frames, a long phase) at 120 s: +86 -> +62 % BD-rate vs
# x264 veryslow.
ROUNDING_STEPS = 100
# A video's training step prices the latents (`LatentGrid.rate_bits`) on every RATE_EVERY-th
# step only, at RATE_EVERY times lambda, from RATE_EVERY_MIN_BPP up: the rate estimate is a
# third of a step (0.2 bpp on Bunny 96-127: ~48 of ~150 ms), and the latents answer its pull
# over tens of steps, so half as many samples of it at twice the weight steer them as well
# while the fit takes 3-41 % more steps. Measured on the tuning clips (Bunny 96-127 /
# carphone 60-91, 320x180 / 176x144, 32 frames) at 60 s, each pair back to back, decoded PSNR
# of every-2nd-step minus every-step: 0.2 bpp +0.09 / +0.02, -0.14 / +0.34 dB; 0.1 bpp +0.20 /
# +0.23, -0.19 / 0.00; 0.4 bpp +0.90 / -0.11 (mean +0.13 dB, at 1.1 % fewer bits on average:
# -4 to +3 % a pair). At 0.05 bpp it lost (-0.29 / -0.63 dB at 4 / 8 % fewer bits),
# where the rate term is most of the loss; every third step lost at 0.2 bpp (-0.51 / -0.24).
# Keeping every step in the straight-through phase (the last quarter) did no better (0.2 bpp
# -0.29 / +0.10 dB at 4-5 % fewer bits). Frames trained on windows (1080p) and images price
# every step (not measured).
RATE_EVERY = 2
RATE_EVERY_MIN_BPP = 0.075
MAX_LATENT = 1 << 15  # |latent| bound a file may declare
PARAM_STEP = 64.0  # Laplace mean and log-scale are rounded to 1/64 before coding: both ends agree
LOG_SCALE_RANGE = (-4.0, 8.0)


# ------------------------------------------------------------------ training task
@dataclass
class RateTarget:
    """What the fit aims at: a fixed lambda, or a bpp that lambda is steered to."""

    lam: float | None = None
    bpp: float | None = None
    noise_fraction: float = 0.75  # share of the budget trained with the noise proxy
    # frames a video's training step renders (`--batch-size`). Re-measured with motion fields
    # and residual latents (60 s, 0.2 bpp; PSNR / bpp at 1, 2, 4 frames): Bunny 96-127
    # 34.11 / 0.190, 34.68 / 0.203, 34.07 / 0.206; carphone 60-91 33.07 / 0.207,
    # 33.45 / 0.202, 33.38 / 0.201.
    frames_per_step: int = 2

    def validate(self) -> None:
        if self.lam is not None and not (math.isfinite(self.lam) and self.lam > 0):
            raise InrError("--lambda must be a positive number")
        if self.bpp is not None and not (math.isfinite(self.bpp) and self.bpp > 0):
            raise InrError("--bpp must be positive")


log = logging.getLogger("inr.rate")
TRAIN_PIXELS = 1 << 18  # pixels a training step renders: larger frames are trained on windows
EVAL_PIXELS = 1 << 23  # pixels the encoder's own evaluations render (all frames of a small clip)
# Pixels each weight-depth candidate renders: 9 frames spread over a 320x180 clip, one frame
# of a larger one. Five candidates rendering a 32-frame 320x180 clip whole took 3.7 s of a
# 60 s encode (6 %); the depth is one choice for the whole network, which a spread of frames
# judges as well.
WEIGHT_EVAL_PIXELS = 1 << 19


class RateTask:
    """What every rate-aware task shares: lambda (fixed, or steered towards a bpp target from
    the measured rate), the overhead the file pays besides the coded latents, and the
    quantization proxy of the moment (noise for the first `noise_fraction` of the budget:
    uniform, or for grid images soft rounding, `GridTask`; then straight-through rounding).
    `grid` and `shacira` build their tasks on it.

    What the encoder asks of it beyond a FitTask: `evaluate(model, reconstruction=False)`
    (with `latent_bpp_estimate`), `mse(model, frames)` and `latent_bits(model)` for the
    weight-depth choice, `eval_frames()` (which frames those read; None: all)."""

    def __init__(self, target: RateTarget, pixels: int, overhead_bits: float = 0.0):
        self.target, self.pixels = target, pixels
        # lambda in MSE per bpp. The latent rate moves only as about lambda^-1/4 (measured on
        # Bunny 8 frames: 0.45 bpp at 3e-3, 0.16 bpp at 0.2), so a bpp target starts from that
        # curve and is steered from there. encode_rate_aware replaces this start with the
        # slope of the quantizer a family with an analysis start retargets to.
        if target.lam is not None:
            self.lam = target.lam
        elif target.bpp is not None:
            self.lam = float(min(max(3e-3 * (0.45 / target.bpp) ** 4, 1e-5), 1.0))
        else:
            self.lam = 3e-3
        self.overhead_bpp = overhead_bits / pixels  # network weights and header, paid anyway
        self.lam_ceiling = LAMBDA_MAX
        self.last_log_rate: float | None = None
        self.state: FitState | None = None
        self.rounding_factor: float | None = None  # fixed at the first straight-through step

    def attach(self, state: FitState) -> None:
        self.state = state

    def optim_defaults(self, optim: OptimDefaults) -> OptimDefaults:
        """The family's optimizer defaults as this task trains with them: as they are."""
        return optim

    @property
    def progress(self) -> float:
        """How far through its budget the fit is (0 before it is attached)."""
        return self.state.progress if self.state is not None else 0.0

    def quant_mode(self) -> str:
        return "noise" if self.progress < self.target.noise_fraction else "ste"

    def noise_progress(self) -> float:
        """How far through the noise phase the fit is, 0 to 1 (the soft-rounding schedule)."""
        return min(self.progress / max(self.target.noise_fraction, 1e-9), 1.0)

    def late_lr_factor(self) -> float:
        """The latents' learning-rate factor (`OptimDefaults.late`): 1 under the noise proxy;
        in the straight-through phase, ROUNDING_STEPS over the steps that phase will take
        (estimated from the pace so far when it starts), at most 1."""
        if self.quant_mode() != "ste":
            return 1.0
        if self.rounding_factor is None:
            st = self.state
            steps = st.step / max(st.progress, 1e-9) * (1 - self.target.noise_fraction)
            self.rounding_factor = min(1.0, ROUNDING_STEPS / max(steps, 1.0))
        return self.rounding_factor

    def eval_frames(self, pixels: int = EVAL_PIXELS) -> list[int] | None:
        """Frames the encoder's own evaluations render, about `pixels` of them (None: all)."""
        return None

    @torch.no_grad()
    def mse(self, model, frames: list[int] | None = None) -> float:
        """Mean squared error of the decoded signal (`frames` is for frame-based tasks)."""
        return float(F.mse_loss(self.reconstruct(model), self.reference))

    @torch.no_grad()
    def latent_bits(self, model) -> float:
        """Bits of the rounded latents under the family's rate model (`rate_scope()` says
        which latents a task scores)."""
        was = model.quant_mode
        model.quant_mode = "round"
        try:
            return float(model.rate_bits(**self.rate_scope()))
        finally:
            model.quant_mode = was

    def rate_scope(self) -> dict:
        """Keyword arguments of `model.rate_bits` for `latent_bits`: all latents here."""
        return {}

    def steer_at(self, step: int, rounded_bits: Callable[[], float]) -> None:
        """Every STEER_EVERY steps with a bpp target, steer lambda on `rounded_bits()`: the
        rate of all the rounded latents, the file's rate, not the noise proxy's, and not a
        batch's estimate, whose noise the damping term would amplify into a random walk of
        lambda (seen: 0.05 bpp targets ending at 0.07)."""
        if step % STEER_EVERY == 0 and self.target.bpp is not None:
            with torch.no_grad():
                self._steer(float(rounded_bits()) / self.pixels)

    def start_lambda(self, lam: float) -> None:
        """Start from `lam`, a slope known to be near the one the fit settles on: steering may
        then raise lambda to LAMBDA_WINDUP times it, no more (see LAMBDA_WINDUP)."""
        self.lam = lam
        self.lam_ceiling = min(LAMBDA_WINDUP * lam, LAMBDA_MAX)

    def _steer(self, bpp: float) -> None:
        """Lambda control towards the target rate, in the log domain, with a damping term.

        The latents answer a change of lambda only over tens of steps, and the rate falls
        much faster than it climbs back, so a plain proportional controller overshoots
        (measured: a 0.4 bpp target ended at 0.12 bpp). The derivative term holds lambda
        while the rate is already moving the right way; each update is bounded to +-20 %."""
        if self.target.bpp is None:
            return
        want = max(self.target.bpp - self.overhead_bpp, 0.1 * self.target.bpp)
        log_rate = math.log(max(bpp, 1e-6))
        trend = 0.0 if self.last_log_rate is None else log_rate - self.last_log_rate
        self.last_log_rate = log_rate
        step = 0.5 * (log_rate - math.log(want)) + 2.0 * trend
        self.lam = float(min(max(self.lam * math.exp(min(max(step, -0.2), 0.2)), 1e-7), self.lam_ceiling))


class GridTask(RateTask):
    """FitTask for `LatentGrid`: random frames per step, loss = MSE + lambda * latent bpp.

    Memory follows a step, not the clip: the target frames are the signal's own tensor (no
    copy), a step renders at most TRAIN_PIXELS (frames bigger than that are trained on a
    random window each step; the rate term then scores the latents that window reads), and
    evaluations stream frame batches."""

    def __init__(self, signal, device: torch.device, target: RateTarget, overhead_bits: float = 0.0):
        self.frames = frames_of(signal).to(device)  # (T, C, H, W), a view of the signal's data
        self.device = device
        self.num_frames, _, self.height, self.width = self.frames.shape
        # images train under soft rounding, for a longer noise phase (grid.SOFT_ROUND_T,
        # IMAGE_NOISE_FRACTION); videos under uniform noise
        self.soft_rounding = self.num_frames == 1
        if self.soft_rounding:
            target = dataclasses.replace(target, noise_fraction=IMAGE_NOISE_FRACTION)
        super().__init__(target, self.num_frames * self.height * self.width, overhead_bits)
        self.batch = max(1, min(target.frames_per_step, self.num_frames))
        self.steps_per_epoch = -(-self.num_frames // self.batch)
        side = math.isqrt(max(1, TRAIN_PIXELS // self.batch))
        wh = min(self.height, side)
        self.window = (wh, min(self.width, max(side, TRAIN_PIXELS // (self.batch * wh))))
        if self.window == (self.height, self.width):
            self.window = None
        else:  # a window covers a fraction of a frame: an epoch is as many steps as it takes to cover it
            self.steps_per_epoch *= -(-self.height * self.width // (self.window[0] * self.window[1]))
        sparse = self.num_frames > 1 and self.window is None and target.bpp is not None and target.bpp >= RATE_EVERY_MIN_BPP
        self.rate_every = RATE_EVERY if sparse else 1

    def optim_defaults(self, optim: OptimDefaults) -> OptimDefaults:
        """Frames trained on windows (larger than a step renders: a 1080p GOP trains about a
        dozen steps in its share) train their entropy models at the network's decaying rate,
        without the boost `steady` groups get: on a 12-frame 1080p GOP (the first of the
        600-frame bench clip, 0.02 bpp, 48 s) the boost cost 2.9 dB (20.10 against 22.99 dB;
        kept steady at 1x 21.14, 3x decaying 20.94). It was chosen on 320x180 clips and
        256x256 crops, fits of hundreds of steps."""
        if self.window is None or not optim.steady:
            return optim
        plain = tuple((prefix, scale) for prefix, scale in optim.lr_scales if prefix not in optim.steady)
        return dataclasses.replace(optim, lr_scales=plain, steady=())

    @property
    def reference(self) -> torch.Tensor:
        """The signal as `reconstruct` returns it: (T, H, W, C)."""
        return self.frames.permute(0, 2, 3, 1)

    def eval_frames(self, pixels: int = EVAL_PIXELS) -> list[int] | None:
        """Frames the encoder's own evaluations (the start-vs-end check, the weight depth
        choice) render: all (None) up to `pixels`, else as many as fit, spread over the
        clip. At 1080p a frame takes about half a second to render on two cores, and these
        evaluations are run seven times; the report's quality is measured on the whole file."""
        per_frame = self.height * self.width
        n = self.num_frames
        if n * per_frame <= pixels:
            return None
        count = max(1, pixels // per_frame)
        return sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(count)})

    def _random_window(self, generator: torch.Generator) -> tuple[int, int, int, int] | None:
        if self.window is None:
            return None
        wh, ww = self.window
        y = int(torch.randint(0, self.height - wh + 1, (1,), generator=generator))
        x = int(torch.randint(0, self.width - ww + 1, (1,), generator=generator))
        return y, y + wh, x, x + ww

    def batch_loss(self, model: LatentGrid, generator: torch.Generator, step: int):
        model.quant_mode = self.quant_mode()
        model.quant_anneal = self.noise_progress() if self.soft_rounding else None
        idx = torch.randperm(self.num_frames, generator=generator)[: self.batch].to(self.device)
        window = self._random_window(generator)
        latents = model.quantized()
        if window is None:
            pred, target = model.synthesize(model.upsampled(idx, latents)).float(), self.frames[idx]
        else:
            # the 3x3 refinement reads a pixel's neighbours: render a margin and score inside it
            y0, y1, x0, x1 = window
            m = model.config.refine
            outer = (max(y0 - m, 0), min(y1 + m, self.height), max(x0 - m, 0), min(x1 + m, self.width))
            pred = model.synthesize(model.upsampled(idx, latents, outer)).float()
            pred = pred[:, :, y0 - outer[0] : y1 - outer[0], x0 - outer[2] : x1 - outer[2]]
            target = self.frames[idx][:, :, y0:y1, x0:x1]
        mse = F.mse_loss(pred, target)
        # (a large GOP's rate estimate reads fixed frames, so it does not wander either)
        self.steer_at(step, lambda: self.latent_bits(model))
        if step % self.rate_every:  # RATE_EVERY: this step leaves the rate out
            return mse, mse
        bpp = model.rate_bits(latents, idx, window) / self.pixels
        return mse + self.rate_every * self.lam * bpp, mse

    def rate_scope(self) -> dict:
        """All latents, or for a large GOP an estimate from the time slices that
        `eval_frames()` read, scaled to each level (`rate_bits` with `idx`), which scores a
        fraction of the level-0 latents at 1080p."""
        frames = self.eval_frames()
        return {} if frames is None else {"idx": torch.tensor(frames, device=self.device)}

    @torch.no_grad()
    def reconstructed(self, model: LatentGrid, frames: list[int] | None = None):
        """(frame indices, (n, C, H, W) reconstruction) a render batch at a time, as decoded
        (rounded latents); all frames, or those listed."""
        was = model.quant_mode
        model.quant_mode = "round"
        model.eval()
        order = list(range(self.num_frames)) if frames is None else frames
        batch = model.render_batch(self.num_frames, self.height, self.width)
        try:
            for i in range(0, len(order), batch):
                idx = torch.tensor(order[i : i + batch], device=self.device)
                yield idx, model(idx).float().clamp(0, 1)
        finally:
            model.quant_mode = was

    @torch.no_grad()
    def mse(self, model: LatentGrid, frames: list[int] | None = None) -> float:
        """Mean squared error of the decoded frames (all, or those listed), streamed."""
        sse, count = 0.0, 0
        for idx, out in self.reconstructed(model, frames):
            sse += float(((out - self.frames[idx]) ** 2).sum(dtype=torch.float64))
            count += out.numel()
        return sse / count

    @torch.no_grad()
    def reconstruct(self, model: LatentGrid) -> torch.Tensor:
        return torch.cat([out for _, out in self.reconstructed(model)]).permute(0, 2, 3, 1)  # (T, H, W, C)

    @torch.no_grad()
    def preview(self, model: LatentGrid) -> torch.Tensor:
        was = model.training
        _, out = next(self.reconstructed(model, [self.num_frames // 2]))
        model.train(was)
        return out[0].permute(1, 2, 0).cpu()

    def evaluate(self, model: LatentGrid, reconstruction: bool = True, full: bool = True, bits: float | None = None) -> dict:
        """Metrics of the model as it would decode (PSNR: the encoder measures the rest on its
        file, whatever `full` asks); `reconstruction=False` streams the frames (a long 1080p
        GOP's reconstruction would be as large as its float target) and scores `eval_frames()`.
        `bits`: the latents' `latent_bits` when the caller has just measured them (a rate
        pass over a 1080p GOP's latents takes seconds)."""
        t0 = time.perf_counter()
        scored = None
        if reconstruction:
            recon = self.reconstruct(model)
            mse = float(F.mse_loss(recon, self.reference))
        else:
            scored = self.eval_frames()
            mse = self.mse(model, scored)
        synchronize(self.device)
        seconds = time.perf_counter() - t0
        bits = self.latent_bits(model) if bits is None else bits
        out = {"psnr": mse_to_psnr(mse), "latent_bpp_estimate": bits / self.pixels, "lambda": self.lam, "decode_seconds": seconds}
        if scored is not None:
            out["frames_scored"] = len(scored)  # the PSNR is that of these frames
        return {**out, "reconstruction": recon} if reconstruction else out


# ------------------------------------------------------------------ latent coding
def coder_params(mean: torch.Tensor, log_scale: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Round the context model's outputs to a 1/64 grid so encoder and decoder feed the
    coder identical numbers even where the last float bits of the network differ."""
    m = torch.round(mean.detach().double() * PARAM_STEP) / PARAM_STEP
    s = torch.round(log_scale.detach().double().clamp(*LOG_SCALE_RANGE) * PARAM_STEP) / PARAM_STEP
    return m.numpy().ravel(), np.exp(s.numpy().ravel())


def _pass_plan(model: LatentGrid) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """(level, time slices, sites) of every coding pass, in decoding order: the sites are a
    checkerboard half (a mask), or with `config.raster` one wavefront's (rows, columns).

    Levels coarsest first. A temporal model decodes a level one time slice at a time
    (anchors, then the rest), so each slice's context can read the whole previous slice;
    otherwise both passes cover every grid of the level at once. The per-frame tensors (motion
    fields, then residual latents, those the config has) come after the finest level, one
    frame at a time like a temporal level."""
    plan = []
    for k in [*reversed(range(model.config.levels)), *range(model.config.levels, model.num_coded)]:
        _, t, h, w = model.coded(k).shape
        if model.config.raster and k < model.config.levels:  # an image's level: one pass a wavefront
            plan += [(k, torch.arange(t), sites) for sites in raster_passes(h, w)]
            continue
        anchors = checkerboard(h, w)
        temporal = model.context_of(k)[0].temporal  # a temporal context reads the whole previous slice
        groups = [torch.arange(i, i + 1) for i in range(t)] if temporal else [torch.arange(t)]
        plan += [(k, slices, local) for slices in groups for local in (anchors, ~anchors)]
    return plan


def _pass_chunks(model: LatentGrid, levels: list[torch.Tensor], k: int, slices: torch.Tensor, local, reverse: bool = False, cache: dict | None = None):
    """The chunks of one coding pass (`LatentGrid.context_chunks`), each (the range of the
    pass's (C * |slices|, H, W) grids it covers, coder means, coder scales), the coded sites
    being the pass's checkerboard half `local` of those grids. `levels` holds every level's
    values; a pass reads only those decoded before it, so its chunks are independent: the
    encoder takes them last first (`reverse`) and a decoder decodes each as soon as it is
    computed. A pass's symbols are its chunks' in grid-major, then row-major order, however
    it is chunked: chunking is not part of the format.

    A raster wavefront `local` = (rows, columns) is one chunk of every grid, its symbols in
    grid-major, then wavefront order; `cache` keeps the coarser level's context features
    from one wavefront to the next (the coarser level is whole by then)."""
    coarser = levels[k + 1] if k + 1 < model.config.levels else None
    if isinstance(local, tuple):
        cache = {} if cache is None else cache
        if cache.get("level") != k:
            cache.update(level=k, up=None if coarser is None else model.coarser_at(k, coarser))
        z = levels[k].reshape(-1, *levels[k].shape[-2:])
        with torch.no_grad(), torch_threads(1):  # a wavefront's ops are too small to share out
            mean, log_scale = model.context.wavefront_params(k, z, cache["up"], *local)
        yield (slice(None), *coder_params(mean, log_scale))
        return
    with torch.no_grad():
        for grids, _, mean, log_scale in model.context_chunks(k, levels[k], coarser, slices, reverse, coder=True):
            mask = local.expand_as(mean)
            yield (grids, *coder_params(mean[mask], log_scale[mask]))


def _pass_sites(z: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
    """Level values restricted to a pass's time slices, as the (C * |slices|, H, W) grids its
    chunks index: a view (a pass covers one slice or all of them), so writes land in z."""
    h, w = z.shape[-2:]
    return z[:, int(slices[0]):int(slices[-1]) + 1].view(-1, h, w)


def check_range(rec, what: str) -> tuple[int, int]:
    """(min, max) of a header record of coded integers, or BitstreamError (hostile headers)."""
    lo, hi = rec.get("min"), rec.get("max")
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi))
    if not (ok and -MAX_LATENT <= lo <= hi <= MAX_LATENT):
        raise BitstreamError(f"invalid {what} range", part="header")
    return lo, hi


def integer_range(z: torch.Tensor, what: str) -> tuple[int, int]:
    """(min, max) of rounded latents `z`, which a file may declare (|value| <= MAX_LATENT)."""
    lo, hi = (int(z.min()), int(z.max())) if z.numel() else (0, 0)
    if max(abs(lo), abs(hi)) > MAX_LATENT:
        raise InrError(f"{what} exceeds +-{MAX_LATENT}")
    return lo, hi


def ans_encode(chunks) -> bytes:
    """One ANS stream (u32 words, little endian) of `chunks`, each (symbols, min, max, means,
    scales) coded under QuantizedLaplace(min, max) with per-symbol parameters, in the order a
    decoder pops them (`ans_decode`). A chunk whose min equals its max costs nothing."""
    return ans_encode_backwards(reversed(list(chunks)))


def ans_encode_backwards(chunks) -> bytes:
    """`ans_encode` of chunks given last first (ANS is a stack): a generator can compute each
    chunk as it is coded, so only one chunk's parameters are held at a time."""
    coder = constriction.stream.stack.AnsCoder()
    for symbols, lo, hi, m, s in chunks:
        if symbols.size and lo < hi:
            coder.encode_reverse(np.asarray(symbols, dtype=np.int32), constriction.stream.model.QuantizedLaplace(lo, hi), m, s)
    return ans_bytes(coder)


def ans_decode(coder, lo: int, hi: int, m: np.ndarray, s: np.ndarray, tag: str) -> np.ndarray:
    """The next len(m) symbols (float32) of a chunk `ans_encode` wrote; a constant chunk
    (min == max) reads nothing."""
    if lo == hi:
        return np.full(m.shape, float(lo), dtype=np.float32)
    try:
        return np.asarray(coder.decode(constriction.stream.model.QuantizedLaplace(lo, hi), m, s), dtype=np.float32)
    except Exception as exc:  # constriction raises on an exhausted or corrupt stream
        raise BitstreamError(f"section {tag}: latent decoding failed ({type(exc).__name__})", part="payload") from None


def encode_latents(model: LatentGrid) -> tuple[bytes, list[dict]]:
    """The LATS payload and the per-level header records (range of the integers). ANS is a
    stack: passes are coded last to first, each computed when it is coded, so only one
    pass's parameters are held."""
    model.eval()
    latents = [torch.round(model.coded(k).detach()).cpu() for k in range(model.num_coded)]
    records = []
    for k, z in enumerate(latents):
        lo, hi = integer_range(z, f"latent level {k}" if k < model.config.levels else "per-frame latents")
        records.append({"level": k, "shape": list(z.shape), "min": lo, "max": hi})
    def backwards():  # last chunk first, each computed as it is coded
        cache: dict = {}
        for k, slices, local in reversed(_pass_plan(model)):
            if records[k]["min"] < records[k]["max"]:  # a constant level costs no bits
                sites = _pass_sites(latents[k], slices)
                for grids, m, s in _pass_chunks(model, latents, k, slices, local, reverse=True, cache=cache):
                    yield _take(sites[grids], local).numpy().astype(np.int32).ravel(), records[k]["min"], records[k]["max"], m, s

    return ans_encode_backwards(backwards()), records


def decode_latents(model: LatentGrid, payload: bytes, records: list) -> None:
    """Fill `model.latents` from a LATS payload. Raises BitstreamError on anything odd."""
    if not isinstance(records, list) or len(records) != model.num_coded:
        raise BitstreamError("latent records do not match the model", part="header")
    ranges = []
    for k, rec in enumerate(records):
        if not isinstance(rec, dict) or rec.get("shape") != list(model.coded(k).shape):
            raise BitstreamError("latent shape does not match the model", part="header")
        ranges.append(check_range(rec, "latent"))
    coder = ans_decoder(payload, "LATS")
    with torch.no_grad():
        levels = [model.coded(k).data for k in range(model.num_coded)]  # filled pass by pass: a pass reads only what came before
        for z in levels:
            z.zero_()
        cache: dict = {}
        for k, slices, local in _pass_plan(model):
            sites = _pass_sites(levels[k], slices)
            if ranges[k][0] == ranges[k][1]:  # a constant level: nothing coded
                _put(sites, local, torch.tensor(float(ranges[k][0])))
                continue
            for grids, m, s in _pass_chunks(model, levels, k, slices, local, cache=cache):
                values = torch.from_numpy(ans_decode(coder, *ranges[k], m, s, "LATS"))
                _put(sites[grids], local, values.view(sites[grids].shape[0], -1))
    ans_finish(coder, "LATS")


def _take(grids: torch.Tensor, local) -> torch.Tensor:
    """(N, sites) values of a pass's sites: a checkerboard mask or a wavefront's (rows, columns)."""
    return grids[:, local[0], local[1]] if isinstance(local, tuple) else grids[:, local]


def _put(grids: torch.Tensor, local, values: torch.Tensor) -> None:
    """Write a pass's decoded values (N, sites) (or one value) into its sites, in place."""
    if isinstance(local, tuple):
        grids[:, local[0], local[1]] = values
    else:
        grids[:, local] = values


# ------------------------------------------------------------------ the side-information codec
class LatentSection:
    """How a `LatentGrid` file carries its latents: header key `latents` + section LATS.
    The network weights travel in section NETW (`netcode.py`; QPRM/WGTS in older files)."""

    header_key = "latents"

    def encode(self, model: LatentGrid) -> tuple[list, dict[str, bytes]]:
        payload, records = encode_latents(model)
        return records, {"LATS": payload}

    def decode(self, model: LatentGrid, records, sections: dict[str, bytes]) -> None:
        if "LATS" not in sections:
            raise BitstreamError("missing section LATS", part="payload")
        decode_latents(model, sections["LATS"], records)


# ------------------------------------------------------------------ encoding
# Bytes a file spends on framing besides its weights and latents (`encode_rate_aware`'s estimate
# of what the latents cannot have).
FRAMING_BYTES = 100
# What a --seconds budget keeps back from the fit for what follows it (see `encode_rate_aware`):
# this share of the budget, or this many times the evaluation of the analysis start, whichever
# is more. At 0.1 / 4, 60 s image encodes ended at 55-56 s and a 120 s video at 117 s; at
# 0.03 / 5, 60.1-60.4 s and 121.3 s, and the tuning crops gained +0.11 dB (Bunny frame 120 at
# 0.5 bpp) and +0.31 dB (frame 70 at 1 bpp), the tuning clip (Bunny 96-127, 0.2 bpp) about
# the same (+0.3 dB, within the spread of single runs).
RESERVE_SHARE = 0.03
RESERVE_EVALS = 5
# Depths the network's step is tried at (netcode.step_for: max |w| within 2^(bits-1) - 1 steps).
# 4 and 5 since the step scheme: a network of a few hundred weights in a 2 KB file is worth
# trying coarser than the per-row scheme's 6 bits, and each try costs one render.
WEIGHT_BITS = (4, 5, 6, 7, 8, 10, 12)
REFINE_SHARE = 0.05  # the network's share of a file from which its modules' depths are refined
# Coarser depths a module's search tries past one that did not pay (the cost is not monotone
# in the depth within a module's noise). Until this search a module went one and two bits
# below the whole network's depth at most: the synthesis of a 46 dB picture wants 12 bits
# (10 bits lost 0.28 dB), and the context and refinement then kept 10 where 6 cost almost
# nothing. Same fits (400 steps on the tuning crops, both searches on one fitted model):
# 256x256 of Bunny frame 45 at 0.25 bpp 2402 -> 2219 bytes (-7.6 %, 46.44 -> 46.42 dB),
# frame 70 at 1 bpp -0.75 % (35.78 -> 35.79 dB), frame 20 at 2 bpp -1.0 % (38.08 dB both);
# two crops at 0.5 bpp chose the same steps as before.
DEPTH_PATIENCE = 1


def choose_network_steps(model, task: RateTask, names: list[str], encode_weights: Callable[[dict[str, int]], bytes], latent_bits: float | None = None, deadline: float | None = None) -> dict[str, int]:
    """The network's steps (`netcode` indices, by name) by rate-distortion on the decoded
    output, chosen as bit depths: each candidate quantizes the weights as the file will
    (`encode_weights(steps)` gives its bytes), renders, and pays its coded bytes. First one depth
    for the whole network (WEIGHT_BITS), then each module (the synthesis, the refinement, each
    context model: `weight_groups`) at every coarser depth down to the floor, until two in a
    row do not pay: the context models steer only the rate and the refinement convs touch the
    output little, so they tolerate far coarser steps than the synthesis, whose sensitivity
    sets the whole network's depth. `latent_bits`: the latents' bits under the float weights
    as the fit's last evaluation measured them, where the caller has them. `deadline` (a
    `time.perf_counter()` reading): the per-module search tries no candidate it expects to
    end after it (the whole-network depth is always chosen). Unbounded, a 320x180 clip's
    search took 48 candidates and 16 s of a 60 s encode, which ended at 69-74 s."""
    params = dict(model.named_parameters())
    originals = {n: params[n].detach().cpu().clone() for n in names}
    # A GOP of 1080p frames rendered five times would cost more than its training (ten of a
    # 12-frame GOP's 36 s with four frames a candidate): the depth is a choice for the whole
    # network, which a frame's worth of pixels judges as well.
    frames = task.eval_frames(WEIGHT_EVAL_PIXELS)
    # A large GOP's latents are scored once, with the float weights: there the network is a
    # percent of the file, and a rate pass over 1080p latents costs seconds per candidate.
    fixed_bits = None if task.eval_frames() is None else (task.latent_bits(model) if latent_bits is None else latent_bits)

    def steps_at(depths: dict[str, int]) -> dict[str, int]:
        return {n: netcode.step_for(originals[n], depths[n]) for n in names}

    def cost(depths: dict[str, int]) -> tuple[float, float]:
        """(mse + lambda x bpp, the network's share of the file) with these depths."""
        with torch.no_grad():
            steps = steps_at(depths)
            for n, w in netcode.quantized_network(originals, steps).items():
                params[n].copy_(w.to(params[n].device))
            mse = task.mse(model, frames)
            network_bits = len(encode_weights(steps)) * 8
            latents = fixed_bits if fixed_bits is not None else task.latent_bits(model)
            return mse + task.lam * (network_bits + latents) / task.pixels, network_bits / (network_bits + latents)

    t0 = time.perf_counter()
    (best_cost, share), best = min((cost(dict.fromkeys(names, b)), b) for b in WEIGHT_BITS)
    per_try = (time.perf_counter() - t0) / len(WEIGHT_BITS)
    depths = dict.fromkeys(names, best)
    # Per module only where the network is a sizable part of the file (an image of a few KB):
    # in a video's tens of KB it is a few percent, and each try renders the clip again.
    for group in weight_groups(names) if share >= REFINE_SHARE else []:
        misses = 0
        for b in range(best - 1, WEIGHT_BITS[0] - 1, -1):
            if deadline is not None and time.perf_counter() + per_try > deadline:
                break
            trial = depths | dict.fromkeys(group, b)
            c, _ = cost(trial)
            if c < best_cost:
                best_cost, depths, misses = c, trial, 0
            else:
                misses += 1
                if misses > DEPTH_PATIENCE:
                    break
    with torch.no_grad():
        for n in names:
            params[n].copy_(originals[n].to(params[n].device))
    return steps_at(depths)


def weight_groups(names: list[str]) -> list[list[str]]:
    """The weights by top-level module (`synthesis`, `refine`, `context`, ...), in file order."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(n.split(".")[0], []).append(n)
    return list(groups.values())


def _evaluated(model, task: RateTask) -> tuple[dict, dict]:
    """(metrics without the reconstruction, a copy of the weights and latents) of the model
    as it would be coded now."""
    model.quant_mode = "round"
    model.eval()
    metrics = task.evaluate(model, reconstruction=False)
    return metrics, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _keep_the_better(model, task: RateTask, start: tuple[dict, dict]) -> dict:
    """The trained model's metrics, or the analysis start's (restored into `model`) when the
    start is better on both axes. With a budget of a few dozen steps on a small picture the
    start can already sit near 50 dB, and the first steps at the peak learning rate scatter
    the synthesis it was built with faster than the remaining ones repair it (seen: a 24x24
    crop ending at 20 dB from a 63 dB start). A fit must never return less than it began with."""
    (begun, weights), (ended, _) = start, _evaluated(model, task)
    # The start may cost no more than the fit's end, or than the target leaves the latents: a
    # start inside the target that the fit merely made cheaper is still the better file.
    # Compared with the end's rate alone, a 24x24 crop kept a 24 dB end over a 60 dB start
    # about one run in five (tests/test_grid.py::test_a_fit_never_ends_below_its_start).
    allowed = ended["latent_bpp_estimate"] * 1.001
    if task.target.bpp is not None:
        allowed = max(allowed, task.target.bpp - task.overhead_bpp)
    if begun["psnr"] > ended["psnr"] and begun["latent_bpp_estimate"] <= allowed:
        model.load_state_dict(weights)
        return begun
    return ended


# A fit's end more than SETTLE_ABOVE over its latents' target is coarsened to at most
# RATE_SLACK over it. Only then: a coarser step buys rate dearly (quantization noise grows with
# its square), and the target already leaves the weights a conservative 8 bits each, so a fit
# a few percent over still makes its file within 10 %. With both at 1.03, Bunny's 30 s points
# came out 0.0-1.3 dB below the run before (the 0.1 bpp point, 5 % over before, lost 1.3 dB).
SETTLE_ABOVE = 1.08
RATE_SLACK = 1.05
# ... and only a fit of fewer steps than this, which lambda control (a measurement every
# STEER_EVERY steps) could not steer: a 1080p GOP trains about a dozen. Settling Bunny's 30 s
# fits (hundreds of steps, 5-20 % over) cost them 0.8-1.2 dB for 5-17 % of rate, far below
# the curve they were on: 25.57 / 27.48 / 29.40 dB at 0.100 / 0.20 / 0.40 bpp against
# 26.67 / 28.66 / 30.20 at 0.105 / 0.227 / 0.478 unsettled.
SETTLE_STEPS = 8 * STEER_EVERY
# A longer fit is settled too when it ended this far over (a file that far off breaks the
# rate contract whatever settling costs): a 12-frame 1080p GOP whose finest level is half
# its resolution trains 100-160 steps at 0.02 bpp, too few for lambda control, and ended
# 65-130 % over its target.
SETTLE_FAR = 1.25
SETTLE_PASSES = 8  # rate passes the coarsening may take (one or two when 20 % over)
MAX_COARSEN = 16.0  # the most a fit's latent step may be multiplied by to meet its rate


def settle_rate(model, task: RateTask, metrics: dict, steps: int = 0) -> dict:
    """The end of a fit too short for lambda control (fewer than `SETTLE_STEPS` steps: a 1080p
    GOP trains a dozen in its share of the budget) that ended above its target (or of any
    fit that ended more than SETTLE_FAR over it), made coarser
    until it is there (first, if that pays less, under the rate model's refitted scales):
    `model.coarsen(factor)` (families without it keep their rate), the factor found by a
    bracketed secant on log-rate over log-factor, measured under the file's own rate model,
    and at most MAX_COARSEN (what cannot be coarsened, the motion fields and the network, may
    alone exceed a target). Returns the metrics of what the file will hold."""
    if task.target.bpp is None or not hasattr(model, "coarsen"):
        return metrics
    want = max(task.target.bpp - task.overhead_bpp, 0.1 * task.target.bpp)
    rate = metrics["latent_bpp_estimate"]
    if rate <= want * (SETTLE_ABOVE if steps < SETTLE_STEPS else SETTLE_FAR):
        return metrics
    if hasattr(model, "fit_rate_scales"):  # first the rate model's own scales, kept if they pay less
        undo = model.fit_rate_scales()
        refit = task.latent_bits(model) / task.pixels
        if refit < rate:
            log.debug("rate settled: refitted scales %.4f -> %.4f bpp", rate, refit)
            rate, metrics = refit, {**metrics, "latent_bpp_estimate": refit}
        else:
            undo()
        if rate <= want * RATE_SLACK:
            return metrics
    # Secant steps on log-rate over log-factor, kept inside the bracket of a factor known too
    # fine and one known to fit (bisection when a step leaves it): the rate falls slowly while
    # the step is below the latents' spread, then fast, so a plain secant overshoots.
    tried = {0.0: max(rate, 1e-9)}  # log factor from the fit's end -> latent bpp
    low, high = 0.0, None  # too fine; fits
    at, slope = 0.0, 1.0  # where the model is now; rate ~ factor^-slope, a first guess
    for _ in range(SETTLE_PASSES):
        guess = min(low + math.log(tried[low] / want) / slope, math.log(MAX_COARSEN))
        if high is not None and not low < guess < high:
            guess = 0.5 * (low + high)
        if guess <= at and high is None:  # at the cap and still over: the coarsest it may be
            break
        model.coarsen(math.exp(guess - at))
        before, at = low, guess
        # floored: coarsened far enough, tiny latents all round to zero and code in 0 bits
        # (a 2-frame 64x96 GOP did), and the secant's log-ratios need a positive rate
        tried[at] = max(task.latent_bits(model) / task.pixels, 1e-9)
        if tried[at] <= want * RATE_SLACK:
            high = at if high is None else min(high, at)
        else:
            low = max(low, at)
        if want * 0.97 <= tried[at] <= want * RATE_SLACK:
            break
        # the slope through the bracket's ends, or through the last two points still too fine
        a, b = (low, high) if high is not None else (before, low)
        if a != b:
            slope = max(math.log(tried[a] / tried[b]) / (b - a), 0.05)
    goal = high if high is not None else at  # the least coarsening that fits
    if goal != at:
        model.coarsen(math.exp(goal - at))
    log.debug("rate settled: latents %.4f -> %.4f bpp (want %.4f), step x%.3f, %d rate passes", rate, tried[goal], want, math.exp(goal), len(tried) - 1)
    model.quant_mode = "round"
    known = tried[goal] * task.pixels if goal == at and tried[goal] > 1e-9 else None  # the last pass measured this state
    return {**task.evaluate(model, reconstruction=False, bits=known), "settled_factor": math.exp(goal)}


# The finest levels an encoder may empty (`drop_empty_levels`): those with at most this share
# of non-zero latents, whose bits are at most EMPTY_LEVEL_SHARE of the latents'. A 12-frame
# 1080p GOP at 0.02 bpp (Bunny scaled, `--seconds 120 --gop 12`) ends with 753 non-zero
# latents of 12.4M at its full-resolution level: 1,575 bytes (2.5 % of the GOP) for 0.0003 dB,
# and coding and decoding those sites took about 5 s each. An emptied level is constant: the
# file codes no symbol of it and a decoder skips it. The share bound keeps an encode near its
# rate target: emptying a level worth a large share would leave the file far under it.
EMPTY_LEVEL_FRACTION = 0.01
EMPTY_LEVEL_SHARE = 0.05


def drop_empty_levels(model, task: RateTask, metrics: dict) -> dict:
    """Empty (set to zero) the finest latent levels whose content does not pay for its bits
    (`EMPTY_LEVEL_FRACTION`, `EMPTY_LEVEL_SHARE`): each from the finest up, while the
    distortion it adds, measured on the depth search's frames, is less than lambda x its bits
    (per pixel). Stops at the first level kept (a finer level's context reads the coarser
    one, but an emptied finer level codes nothing); passes over one that is already empty.
    Returns `metrics` with the latents' rate less what was dropped."""
    if not hasattr(model, "coded_bits"):
        return metrics
    latent_bits = metrics["latent_bpp_estimate"] * task.pixels
    frames = task.eval_frames(WEIGHT_EVAL_PIXELS)
    model.quant_mode = "round"
    base, dropped = None, []
    for k in range(model.config.levels - 1):  # the coarsest level always stays
        z = model.latents[k]
        rounded = torch.round(z.detach())
        if not rounded.any():
            continue  # already empty: the next one may be emptied as well
        if float((rounded != 0).float().mean()) > EMPTY_LEVEL_FRACTION:
            break
        bits = model.coded_bits(k)  # what the file spends on it; nothing once it is constant
        if bits > EMPTY_LEVEL_SHARE * latent_bits:
            break
        base = task.mse(model, frames) if base is None else base
        kept = z.detach().clone()
        with torch.no_grad():
            z.zero_()
        mse = task.mse(model, frames)
        if mse - base >= task.lam * bits / task.pixels:
            with torch.no_grad():
                z.copy_(kept)
            break
        base, latent_bits = mse, latent_bits - bits
        dropped.append((k, bits))
    if not dropped:
        return metrics
    log.debug("emptied latent levels %s (%s bytes)", [k for k, _ in dropped], [round(b / 8) for _, b in dropped])
    return {**metrics, "latent_bpp_estimate": latent_bits / task.pixels, "emptied_levels": [k for k, _ in dropped]}


@dataclass
class RateAwareEncoding:
    data: bytes
    model: torch.nn.Module  # weights as the file holds them (dequantized), latents rounded
    metrics: dict
    state: FitState


def encode_rate_aware(signal, spec, cfg, model, fit, target: RateTarget, signal_meta: dict, device: torch.device, callback=None, phase=None, started: float | None = None) -> RateAwareEncoding:
    """Train a rate-aware `model` for rate and distortion within `fit`'s budget, then write
    the file. What it asks of the family (`grid`, `shacira`) beyond the representation
    interface: `rate_task(signal, device, target, overhead_bits)` (a `RateTask` whose
    `evaluate` reports `latent_bpp_estimate`, with `reference` and `reconstruct`),
    `start_at_rate(bpp, pixels)` (re-quantize an analysis start for a rate: the latent step,
    or NaN without one), `round_latents()` (snap the side codec's latents to the integers
    the file holds), and `side_codec()`. `started` (a `time.perf_counter()` reading) is when
    the encode began, so a `--seconds` budget counts the model's analysis start too."""
    from inr.export.codec import encode_model
    from inr.fit import Trainer

    target.validate()
    phase = phase or (lambda name: None)
    started = time.perf_counter() if started is None else started
    budget = fit.seconds
    model = model.to(device)
    weights = model.stored_tensors()
    names = list(weights)
    # What the file pays besides the latents, estimated at 6 bits per weight plus framing
    # (preamble 16 bytes, a header of ~65 bytes under the second preset dictionary, two
    # section frames of 12; 250 bytes under the first, whose header took ~230).
    # The depths are chosen after the fit (on the 256x256 tuning crop of Bunny frame 120:
    # 6-7 bits at 0.25 bpp, 6-8 at 1 bpp; NETW and the header 840-900 bytes, the estimate
    # 790: the latents' share is what lambda steers to). At 8 bits per weight, the estimate of
    # the per-row scheme, files landed under their targets since NETW: the tuning images
    # 11 % at 0.3 bpp (Bunny frame 120) and 9 % at 1.2 (frame 70), the tuning clips 3-8 % at
    # 0.2 bpp, the 256x256 still of the image report 12 % at 0.25.
    overhead = 6.0 * sum(w.numel() for w in weights.values()) + 8.0 * FRAMING_BYTES
    task = model.rate_task(signal, device, target, overhead_bits=overhead)
    if target.bpp is not None:  # start the analysis at the target rate
        step = model.start_at_rate(max(target.bpp - task.overhead_bpp, 0.1 * target.bpp), task.pixels)
        if target.lam is None and math.isfinite(step):
            # the slope of a uniform quantizer of that step (high-rate theory: dD/dR =
            # step^2 ln2 / 6), doubled: it matched the lambda the controller settled on
            # within 2x from 0.05 to 0.4 bpp on Bunny, where a fixed guess was off 100x
            task.start_lambda(2 * step**2 * math.log(2) / 6)
    t_eval = time.perf_counter()
    start = _evaluated(model, task)
    eval_seconds = time.perf_counter() - t_eval
    if budget is not None:
        # --seconds is the whole encode: what the analysis start and its retargeting took is
        # spent, and what follows the fit is kept back (RESERVE_SHARE of the budget, or
        # RESERVE_EVALS times the evaluation just made: the end-of-fit evaluation, the
        # bit-depth choice and the coding measured about that on Bunny 320x180x32). When the fit
        # got 9 s of a 10 s budget whatever came before and after it, 10 s encodes took 11.1
        # to 14.9 s (measured on three clips); now 11.2 s. A quarter is always trained.
        reserve = max(RESERVE_SHARE * budget, RESERVE_EVALS * eval_seconds)
        fit = dataclasses.replace(fit, seconds=max(budget - reserve - (time.perf_counter() - started), 0.25 * budget))
    trainer = Trainer(model, task, fit, task.optim_defaults(spec.optim), device)
    phase("fit")
    state = trainer.run(callback=callback)
    float_metrics = drop_empty_levels(model, task, settle_rate(model, task, _keep_the_better(model, task, start), state.step))

    phase("code")

    tensors = {n: p.detach().cpu().clone() for n, p in model.stored_tensors().items()}

    def weights_bytes(steps: dict[str, int]) -> bytes:
        return encode_model(spec, cfg, tensors, signal_meta, 8, steps=steps)

    t_depth = time.perf_counter()
    # the depth search may use what the budget has left but the coding (about an evaluation),
    # and at least RESERVE_SHARE of it: an image's fit ends about there, and its search (tries
    # of ~30 ms on a 256x256 crop) is worth up to 7 % of the file
    deadline = None if budget is None else max(started + budget - eval_seconds, t_depth + RESERVE_SHARE * budget)
    # the latents' bits under the float weights: what settle_rate's metrics measured last
    measured_bits = float_metrics["latent_bpp_estimate"] * task.pixels
    steps = choose_network_steps(model, task, names, weights_bytes, latent_bits=measured_bits, deadline=deadline)
    log.debug("network steps chosen in %.1f s: %s", time.perf_counter() - t_depth, sorted(set(steps.values())))
    model = model.cpu()
    with torch.no_grad():  # the decoder's weights, so latents are coded with its rate model
        params = dict(model.named_parameters())
        for n, w in netcode.quantized_network(tensors, steps).items():
            params[n].copy_(w)
        model.round_latents()
    side = model.side_codec()
    records, sections = side.encode(model)
    data = encode_model(spec, cfg, tensors, signal_meta, 8, extra_header={side.header_key: records}, extra_sections=sections, steps=steps)
    return RateAwareEncoding(data, model, float_metrics, state)
