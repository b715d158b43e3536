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
import math
import time
from dataclasses import dataclass
from typing import Callable

import constriction
import numpy as np
import torch
import torch.nn.functional as F

from inr.bitstream import BitstreamError
from inr.device import synchronize
from inr.errors import InrError
from inr.fit import FitState
from inr.metrics import mse_to_psnr
from inr.models.grid import LatentGrid, checkerboard, frames_of, previous_slices

STEER_EVERY = 8  # steps between rate measurements for lambda control
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
    frames_per_step: int = 2

    def validate(self) -> None:
        if self.lam is not None and not (math.isfinite(self.lam) and self.lam > 0):
            raise InrError("--lambda must be a positive number")
        if self.bpp is not None and not (math.isfinite(self.bpp) and self.bpp > 0):
            raise InrError("--bpp must be positive")


class RateTask:
    """What every rate-aware task shares: lambda (fixed, or steered towards a bpp target from
    the measured rate), the overhead the file pays besides the coded latents, and the
    quantization proxy of the moment (uniform noise for the first `noise_fraction` of the
    budget, then straight-through rounding). `grid` and `shacira` build their tasks on it."""

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
        self.last_log_rate: float | None = None
        self.state: FitState | None = None

    def attach(self, state: FitState) -> None:
        self.state = state

    def quant_mode(self) -> str:
        progress = self.state.progress if self.state is not None else 0.0
        return "noise" if progress < self.target.noise_fraction else "ste"

    def steer_at(self, step: int, rounded_bits: Callable[[], torch.Tensor]) -> None:
        """Every STEER_EVERY steps with a bpp target, steer lambda on `rounded_bits()`: the
        rate of all the rounded latents, the file's rate, not the noise proxy's, and not a
        batch's estimate, whose noise the damping term would amplify into a random walk of
        lambda (seen: 0.05 bpp targets ending at 0.07)."""
        if step % STEER_EVERY == 0 and self.target.bpp is not None:
            with torch.no_grad():
                self._steer(float(rounded_bits()) / self.pixels)

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
        self.lam = float(min(max(self.lam * math.exp(min(max(step, -0.2), 0.2)), 1e-7), 10.0))


class GridTask(RateTask):
    """FitTask for `LatentGrid`: random frames per step, loss = MSE + lambda * latent bpp."""

    def __init__(self, signal, device: torch.device, target: RateTarget, overhead_bits: float = 0.0):
        self.frames = frames_of(signal).contiguous().to(device)  # (T, C, H, W)
        self.device = device
        self.num_frames = self.frames.shape[0]
        super().__init__(target, self.num_frames * self.frames.shape[-2] * self.frames.shape[-1], overhead_bits)
        self.batch = max(1, min(target.frames_per_step, self.num_frames))
        self.steps_per_epoch = -(-self.num_frames // self.batch)

    @property
    def reference(self) -> torch.Tensor:
        """The signal as `reconstruct` returns it: (T, H, W, C)."""
        return self.frames.permute(0, 2, 3, 1)

    def batch_loss(self, model: LatentGrid, generator: torch.Generator, step: int):
        model.quant_mode = self.quant_mode()
        idx = torch.randperm(self.num_frames, generator=generator)[: self.batch].to(self.device)
        latents = [model.quantized(k) for k in range(model.config.levels)]
        pred = model.synthesize(model.upsampled(idx, latents)).float()
        mse = F.mse_loss(pred, self.frames[idx])
        bpp = model.rate_bits(latents, idx) / self.pixels
        self.steer_at(step, lambda: model.rate_bits([torch.round(z) for z in model.latents]))
        return mse + self.lam * bpp, mse

    @torch.no_grad()
    def reconstruct(self, model: LatentGrid, batch: int = 4) -> torch.Tensor:
        was = model.quant_mode
        model.quant_mode = "round"
        model.eval()
        outs = []
        for i in range(0, self.num_frames, batch):
            idx = torch.arange(i, min(i + batch, self.num_frames), device=self.device)
            outs.append(model(idx).float().clamp(0, 1))
        model.quant_mode = was
        return torch.cat(outs).permute(0, 2, 3, 1)  # (T, H, W, C)

    @torch.no_grad()
    def preview(self, model: LatentGrid) -> torch.Tensor:
        was, mode = model.training, model.quant_mode
        model.quant_mode = "round"
        idx = torch.tensor([self.num_frames // 2], device=self.device)
        out = model(idx).float().clamp(0, 1)[0].permute(1, 2, 0).cpu()
        model.quant_mode = mode
        model.train(was)
        return out

    def evaluate(self, model: LatentGrid) -> dict:
        t0 = time.perf_counter()
        recon = self.reconstruct(model)
        synchronize(self.device)
        seconds = time.perf_counter() - t0
        target = self.frames.permute(0, 2, 3, 1)
        mse = float(F.mse_loss(recon, target))
        with torch.no_grad():
            was = model.quant_mode
            model.quant_mode = "round"
            bits = float(model.rate_bits())
            model.quant_mode = was
        return {"psnr": mse_to_psnr(mse), "reconstruction": recon, "latent_bpp_estimate": bits / self.pixels, "lambda": self.lam, "decode_seconds": seconds}


# ------------------------------------------------------------------ latent coding
def coder_params(mean: torch.Tensor, log_scale: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Round the context model's outputs to a 1/64 grid so encoder and decoder feed the
    coder identical numbers even where the last float bits of the network differ."""
    m = torch.round(mean.detach().double() * PARAM_STEP) / PARAM_STEP
    s = torch.round(log_scale.detach().double().clamp(*LOG_SCALE_RANGE) * PARAM_STEP) / PARAM_STEP
    return m.numpy().ravel(), np.exp(s.numpy().ravel())


def _passes(model: LatentGrid, latents: list[torch.Tensor] | None):
    """Yield (level, pass, selector, mean, scale) in decoding order. With `latents` None the
    caller fills `model.latents` as it decodes (the generator reads them lazily).

    A temporal model decodes a level one time slice at a time (anchors, then the rest), so
    each slice's context can read the whole previous slice; otherwise both passes cover
    every grid of the level at once."""
    cfg = model.config
    coarser = None
    for k in reversed(range(cfg.levels)):
        c, t, h, w = model.latents[k].shape
        up = model._coarser_for(k, coarser)
        up = None if up is None else up.reshape(c, t, h, w)
        anchors = checkerboard(h, w)
        groups = [torch.arange(i, i + 1) for i in range(t)] if cfg.temporal else [torch.arange(t)]
        for slices in groups:
            for p, local in enumerate((anchors, ~anchors)):
                z = latents[k] if latents is not None else model.latents[k].data
                grids = z[:, slices].reshape(-1, h, w)
                with torch.no_grad():
                    mean, log_scale = model.context.params(
                        k, grids, None if up is None else up[:, slices].reshape(-1, h, w), previous_slices(z, slices)
                    )
                mask = local.expand_as(grids)
                sel = torch.zeros(c, t, h, w, dtype=torch.bool)
                sel[:, slices] = local
                m, s = coder_params(mean[mask], log_scale[mask])
                yield k, p, sel.reshape(-1, h, w), m, s
        coarser = latents[k] if latents is not None else model.latents[k].data


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
    coder = constriction.stream.stack.AnsCoder()
    for symbols, lo, hi, m, s in reversed(list(chunks)):
        if symbols.size and lo < hi:
            coder.encode_reverse(np.asarray(symbols, dtype=np.int32), constriction.stream.model.QuantizedLaplace(lo, hi), m, s)
    return coder.get_compressed().astype("<u4").tobytes()


def ans_decoder(payload: bytes, tag: str):
    """The ANS coder over a section's words, or BitstreamError."""
    if len(payload) % 4:
        raise BitstreamError(f"section {tag} is not whole 32-bit words", part="payload")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    return constriction.stream.stack.AnsCoder(words) if words.size else constriction.stream.stack.AnsCoder()


def ans_decode(coder, lo: int, hi: int, m: np.ndarray, s: np.ndarray, tag: str) -> np.ndarray:
    """The next len(m) symbols (float32) of a chunk `ans_encode` wrote; a constant chunk
    (min == max) reads nothing."""
    if lo == hi:
        return np.full(m.shape, float(lo), dtype=np.float32)
    try:
        return np.asarray(coder.decode(constriction.stream.model.QuantizedLaplace(lo, hi), m, s), dtype=np.float32)
    except Exception as exc:  # constriction raises on an exhausted or corrupt stream
        raise BitstreamError(f"section {tag}: latent decoding failed ({type(exc).__name__})", part="payload") from None


def ans_finish(coder, tag: str) -> None:
    if not coder.is_empty():
        raise BitstreamError(f"section {tag} has unused data", part="payload")


def encode_latents(model: LatentGrid) -> tuple[bytes, list[dict]]:
    """The LATS payload and the per-level header records (range of the integers)."""
    model.eval()
    latents = [torch.round(z.detach()).cpu() for z in model.latents]
    records = []
    for k, z in enumerate(latents):
        lo, hi = integer_range(z, f"latent level {k}")
        records.append({"level": k, "shape": list(z.shape), "min": lo, "max": hi})
    chunks = []
    for k, p, sel, m, s in _passes(model, latents):
        symbols = latents[k].reshape(sel.shape)[sel].numpy().astype(np.int32)
        chunks.append((symbols, records[k]["min"], records[k]["max"], m, s))
    return ans_encode(chunks), records


def decode_latents(model: LatentGrid, payload: bytes, records: list) -> None:
    """Fill `model.latents` from a LATS payload. Raises BitstreamError on anything odd."""
    cfg = model.config
    if not isinstance(records, list) or len(records) != cfg.levels:
        raise BitstreamError("latent records do not match the model", part="header")
    ranges = []
    for k, rec in enumerate(records):
        if not isinstance(rec, dict) or rec.get("shape") != list(model.latents[k].shape):
            raise BitstreamError("latent shape does not match the model", part="header")
        ranges.append(check_range(rec, "latent"))
    coder = ans_decoder(payload, "LATS")
    with torch.no_grad():
        for z in model.latents:
            z.zero_()
        for k, p, sel, m, s in _passes(model, None):
            flat = model.latents[k].data.reshape(sel.shape)
            flat[sel] = torch.from_numpy(ans_decode(coder, *ranges[k], m, s, "LATS"))
    ans_finish(coder, "LATS")


# ------------------------------------------------------------------ the side-information codec
class LatentSection:
    """How a `LatentGrid` file carries its latents: header key `latents` + section LATS.
    The network weights travel in QPRM/WGTS like every other family's."""

    header_key = "latents"

    def encode(self, model: LatentGrid) -> tuple[list, dict[str, bytes]]:
        payload, records = encode_latents(model)
        return records, {"LATS": payload}

    def decode(self, model: LatentGrid, records, sections: dict[str, bytes]) -> None:
        if "LATS" not in sections:
            raise BitstreamError("missing section LATS", part="payload")
        decode_latents(model, sections["LATS"], records)


# ------------------------------------------------------------------ encoding
WEIGHT_BITS = (6, 7, 8, 10, 12)


def choose_weight_bits(model, task: RateTask, names: list[str], encode_weights: Callable[[int], bytes]) -> int:
    """Bit depth for the network weights by rate-distortion on the decoded output: each
    candidate quantizes the weights as the file will, renders, and pays its coded bytes."""
    from inr.export.quant import dequantize, quantize

    params = dict(model.named_parameters())
    originals = {n: params[n].detach().clone() for n in names}
    best: tuple[float, int] | None = None
    target = task.reference
    for bits in WEIGHT_BITS:
        with torch.no_grad():
            for n in names:
                q = quantize(originals[n].cpu(), bits)
                params[n].copy_(dequantize(q.q, q.offset, q.scale).to(params[n].device))
            mse = float(F.mse_loss(task.reconstruct(model), target))
            rate_bpp = len(encode_weights(bits)) * 8 / task.pixels
            cost = mse + task.lam * (rate_bpp + float(model.rate_bits()) / task.pixels)
        if best is None or cost < best[0]:
            best = (cost, bits)
    with torch.no_grad():
        for n in names:
            params[n].copy_(originals[n])
    assert best is not None
    return best[1]


def _evaluated(model, task: RateTask) -> tuple[dict, dict]:
    """(metrics without the reconstruction, a copy of the weights and latents) of the model
    as it would be coded now."""
    model.quant_mode = "round"
    model.eval()
    metrics = {k: v for k, v in task.evaluate(model).items() if k != "reconstruction"}
    return metrics, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _keep_the_better(model, task: RateTask, start: tuple[dict, dict]) -> dict:
    """The trained model's metrics, or the analysis start's (restored into `model`) when the
    start is better on both axes. With a budget of a few dozen steps on a small picture the
    start can already sit near 50 dB, and the first steps at the peak learning rate scatter
    the synthesis it was built with faster than the remaining ones repair it (seen: a 24x24
    crop ending at 20 dB from a 63 dB start). A fit must never return less than it began with."""
    (begun, weights), (ended, _) = start, _evaluated(model, task)
    if begun["psnr"] > ended["psnr"] and begun["latent_bpp_estimate"] <= ended["latent_bpp_estimate"] * 1.001:
        model.load_state_dict(weights)
        return begun
    return ended


@dataclass
class RateAwareEncoding:
    data: bytes
    model: torch.nn.Module  # weights as the file holds them (dequantized), latents rounded
    metrics: dict
    state: FitState
    weight_bits: int


def encode_rate_aware(signal, spec, cfg, model, fit, target: RateTarget, signal_meta: dict, device: torch.device, callback=None, phase=None) -> RateAwareEncoding:
    """Train a rate-aware `model` for rate and distortion within `fit`'s budget, then write
    the file. What it asks of the family (`grid`, `shacira`) beyond the representation
    interface: `rate_task(signal, device, target, overhead_bits)` (a `RateTask` whose
    `evaluate` reports `latent_bpp_estimate`, with `reference` and `reconstruct`),
    `start_at_rate(bpp, pixels)` (re-quantize an analysis start for a rate: the latent step,
    or NaN without one), `round_latents()` (snap the side codec's latents to the integers
    the file holds), and `side_codec()`."""
    from inr.export.codec import encode_model
    from inr.export.quant import dequantize, quantize
    from inr.fit import Trainer

    target.validate()
    phase = phase or (lambda name: None)
    if fit.seconds is not None:  # --seconds is the whole encode: keep a tenth for choosing bits and coding
        fit = dataclasses.replace(fit, seconds=0.9 * fit.seconds)
    model = model.to(device)
    weights = model.stored_tensors()
    names = list(weights)
    # What the file pays besides the latents, estimated at 8 bits per weight plus framing
    # (preamble, a dictionary-compressed header of ~250 bytes, section frames).
    overhead = 8.0 * sum(w.numel() for w in weights.values()) + 8.0 * 300
    task = model.rate_task(signal, device, target, overhead_bits=overhead)
    if target.bpp is not None:  # start the analysis at the target rate
        step = model.start_at_rate(max(target.bpp - task.overhead_bpp, 0.1 * target.bpp), task.pixels)
        if target.lam is None and math.isfinite(step):
            # the slope of a uniform quantizer of that step (high-rate theory: dD/dR =
            # step^2 ln2 / 6), doubled: it matched the lambda the controller settled on
            # within 2x from 0.05 to 0.4 bpp on Bunny, where a fixed guess was off 100x
            task.lam = 2 * step**2 * math.log(2) / 6
    start = _evaluated(model, task)
    trainer = Trainer(model, task, fit, spec.optim, device)
    phase("fit")
    state = trainer.run(callback=callback)
    float_metrics = _keep_the_better(model, task, start)

    phase("code")

    def weights_bytes(bits: int) -> bytes:
        return encode_model(spec, cfg, {n: p.detach().cpu() for n, p in model.stored_tensors().items()}, signal_meta, bits)

    bits = choose_weight_bits(model, task, names, weights_bytes)
    tensors = {n: p.detach().cpu().clone() for n, p in model.stored_tensors().items()}
    model = model.cpu()
    with torch.no_grad():  # the decoder's weights, so latents are coded with its rate model
        params = dict(model.named_parameters())
        for n, w in tensors.items():
            q = quantize(w, bits)
            params[n].copy_(dequantize(q.q, q.offset, q.scale))
        model.round_latents()
    side = model.side_codec()
    records, sections = side.encode(model)
    data = encode_model(spec, cfg, tensors, signal_meta, bits, extra_header={side.header_key: records}, extra_sections=sections)
    return RateAwareEncoding(data, model, float_metrics, state, bits)
