"""Signal -> `.inr` bytes: fit, prune + fine-tune, quantization-aware fine-tune, serialise;
and the way back: bytes -> decoded signal. Rate control lives here too.

The training budget (steps, epochs or seconds) is split: most goes to the fit, a fraction
each to fine-tuning after pruning and to QAT, so `--seconds S` bounds the whole encode.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from inr.device import synchronize
from inr.errors import InrError
from inr.export.codec import decode_model, encode_model
from inr.export.prune import global_magnitude_masks, module_and_attr
from inr.export.quant import FakeQuant, Mask, dequantize, quantize
from inr.fit import FitConfig, FitState, Trainer
from inr.models import get_spec
from inr.models.sizing import closest_size
from inr.pipeline import FitOptions, FitOutcome, base_config, build_model, fit_signal, rate_target
from inr.signals import Signal


@dataclass
class ExportOptions:
    bits: int = 8
    embed_bits: int = 6  # HNeRV's embedding bit depth (its README: --quant_embed_bit 6)
    prune: float = 0.0
    finetune_fraction: float = 0.1  # of the training budget, for each of prune-FT and QAT
    finetune_lr_scale: float = 0.1
    lam: float | None = None  # rate-aware families: distortion + lam * bpp (None: the family's default)

    def validate(self) -> None:
        if not 2 <= self.bits <= 16 or not 2 <= self.embed_bits <= 16:
            raise InrError("--bits must be between 2 and 16")
        if not 0.0 <= self.prune < 1.0:
            raise InrError("--prune must be in [0, 1)")
        if self.lam is not None and not (self.lam > 0 and self.lam < float("inf")):
            raise InrError("--lambda must be a positive number")


@dataclass
class Encoded:
    data: bytes
    spec: object
    config: object
    model: nn.Module  # the quantized model the file decodes to (parametrized, eval mode)
    float_metrics: dict  # of the unquantized fit
    fit_state: FitState


def split_budget(fit: FitConfig, fraction: float, phases: int) -> tuple[FitConfig, FitConfig]:
    """(main, finetune) configs; finetune gets `fraction` of the budget for each extra phase."""

    def part(v, share, integer):
        if v is None:
            return None
        x = v * share
        return max(1, round(x)) if integer else max(x, 1e-3)

    main_share = 1.0 - fraction * phases
    main = dataclasses.replace(
        fit,
        steps=part(fit.steps, main_share, True),
        epochs=part(fit.epochs, main_share, True),
        seconds=part(fit.seconds, main_share, False),
    )
    ft = dataclasses.replace(
        fit,
        steps=part(fit.steps, fraction, True),
        epochs=part(fit.epochs, fraction, True),
        seconds=part(fit.seconds, fraction, False),
        warmup=0.0,
        target_psnr=None,
        checkpoint_every=None,
    )
    return main, ft


def _finetune(model, spec, signal, opts: FitOptions, ft: FitConfig, lr: float, device, callback) -> None:
    task = model.make_task(signal, device, opts)
    Trainer(model, task, dataclasses.replace(ft, lr=lr), spec.optim, device).run(callback=callback)


def _parametrize(model: nn.Module, names, make) -> None:
    for name in names:
        mod, attr = module_and_attr(model, name)
        parametrize.register_parametrization(mod, attr, make(name))


def _unparametrize(model: nn.Module, keep_effect: bool) -> None:
    for mod in list(model.modules()):
        if parametrize.is_parametrized(mod):
            for attr in list(mod.parametrizations.keys()):
                parametrize.remove_parametrizations(mod, attr, leave_parametrized=keep_effect)


def encode_signal(
    signal: Signal,
    opts: FitOptions,
    exp: ExportOptions,
    device: torch.device,
    callback: Callable[[FitState], None] | None = None,
    phase: Callable[[str], None] | None = None,
) -> Encoded:
    """Fit, then export: the whole encoder, within the budget given in `opts.fit`."""
    exp.validate()
    if get_spec(opts.model).rate_aware:
        return _encode_rate_aware(signal, opts, exp, None, device, callback, phase)
    main_fit, ft = split_budget(opts.fit, exp.finetune_fraction, 1 + (exp.prune > 0))
    (phase or (lambda name: None))("fit")
    # the float fit is scored by PSNR alone: the report measures everything on the decoded file
    outcome = fit_signal(signal, dataclasses.replace(opts, fit=main_fit), device, callback=callback, full_metrics=False)
    return export_fitted(outcome, signal, opts, exp, ft, device, callback, phase)


def export_fitted(
    outcome: FitOutcome,
    signal: Signal,
    opts: FitOptions,
    exp: ExportOptions,
    ft: FitConfig,
    device: torch.device,
    callback: Callable[[FitState], None] | None = None,
    phase: Callable[[str], None] | None = None,
) -> Encoded:
    """Prune + fine-tune, quantize-aware fine-tune and serialise an already fitted model.

    The model in `outcome` is modified in place (callers sweeping settings pass a copy).
    """
    exp.validate()
    phase = phase or (lambda name: None)
    spec, model, cfg = outcome.spec, outcome.model, outcome.config
    base_lr = (opts.fit.lr or spec.optim.lr) * exp.finetune_lr_scale
    weights = list(model.stored_weights())  # what pruning and QAT apply to

    masks: dict[str, torch.Tensor] = {}
    if exp.prune > 0:
        phase("prune")
        masks = global_magnitude_masks(model.stored_weights(), exp.prune)
        _parametrize(model, masks, lambda n: Mask(masks[n]))
        _finetune(model, spec, signal, opts, ft, base_lr, device, callback)
        _unparametrize(model, keep_effect=True)

    # Per-item tensors (HNeRV's embeddings) are made now, quantized once, and loaded back, so
    # QAT trains the network against exactly the values the file will carry. The fit's own
    # evaluation made them from these very weights unless pruning has fine-tuned them since
    # (a model that trains again drops them: `HNeRV.train`); at 1080p embedding is seconds.
    if masks or not model.coded_buffers():
        model.prepare_decoding(signal, device)
    buffers = {n: t.detach().cpu() for n, t in model.coded_buffers().items()}
    quantized = {n: quantize(t, exp.embed_bits) for n, t in buffers.items()}
    model.load_stored_tensors({n: dequantize(q.q, q.offset, q.scale).to(device) for n, q in quantized.items()})

    phase("qat")
    weight_bits = model.weight_bits(exp.bits)
    _parametrize(model, weights, lambda n: FakeQuant(weight_bits[n], masks.get(n)))
    _finetune(model, spec, signal, opts, ft, base_lr, device, callback)
    model.eval()
    # Serialise from the float values the fake-quant saw: quantize() gives the same integers.
    originals = {n: _original(model, n) for n in weights} | buffers
    bits = {n: exp.embed_bits if n in buffers else weight_bits[n] for n in originals}
    data = encode_model(spec, cfg, originals, _signal_meta(signal), bits, masks)
    return Encoded(data, spec, cfg, model, outcome.metrics, outcome.state)


def _original(model: nn.Module, name: str) -> torch.Tensor:
    mod, attr = module_and_attr(model, name)
    return mod.parametrizations[attr].original.detach().cpu()


def _signal_meta(signal: Signal) -> dict:
    meta = {"kind": signal.kind, "shape": list(signal.data.shape)}
    for key in ("fps", "sample_rate", "crop", "resize", "source"):
        if key in signal.meta:
            meta[key] = signal.meta[key]
    if "source" in meta:
        meta["source"] = str(meta["source"]).rsplit("/", 1)[-1]  # a name, never a full local path
    return meta


def _encode_rate_aware(signal, opts: FitOptions, exp: ExportOptions, bpp: float | None, device, callback, phase) -> Encoded:
    """Rate-aware families train for rate and distortion in one fit: no prune/QAT phases,
    and a bpp target is met by steering lambda during that fit, never by refitting."""
    from inr.export.grid_codec import encode_rate_aware

    started = time.perf_counter()
    spec = get_spec(opts.model)
    target = rate_target(opts, signal, bpp, exp.lam)
    bits = target.bpp * signal.num_samples if target.bpp is not None else None
    cfg, model = build_model(spec, signal, opts.params, opts.overrides, opts.fit.seed, rate_bits=bits)
    enc = encode_rate_aware(signal, spec, cfg, model, opts.fit, target, _signal_meta(signal), device, callback, phase, started)
    return Encoded(enc.data, spec, cfg, enc.model, enc.metrics, enc.state)


# ------------------------------------------------------------------ decoding
def decode_bytes(data: bytes, device: torch.device) -> tuple[torch.Tensor, dict, float]:
    """bytes -> (decoded signal, header, seconds spent decoding, parsing included)."""
    t0 = time.perf_counter()
    spec, cfg, model, header = decode_model(data)
    out = model.render(header["signal"]["shape"], device)
    synchronize(device)
    return out, header, time.perf_counter() - t0


# ------------------------------------------------------------------ rate control
def encode_to_bpp(
    signal: Signal,
    opts: FitOptions,
    exp: ExportOptions,
    bpp: float,
    device: torch.device,
    tolerance: float = 0.10,
    attempts: int = 3,
    callback: Callable[[FitState], None] | None = None,
    phase: Callable[[str], None] | None = None,
    bits_per_param: float | None = None,
) -> tuple[Encoded, dict]:
    """Pick the parameter budget so the file lands within `tolerance` of `bpp`.

    bpp = file bits / pixels (frames x H x W). The first guess is `bits_per_param` (measured
    on an earlier file of the same model) or the weights' bit depth; each further attempt
    re-sizes with the bits per parameter actually measured, file overhead included. With a
    time budget (`opts.fit.seconds`) the attempts share it: a refit gets only what is left.
    """
    if not bpp > 0:
        raise InrError("--bpp must be positive")
    pixels = signal.num_samples if signal.kind != "audio" else signal.data.shape[0]
    target = bpp * pixels / 8
    if get_spec(opts.model).rate_aware:
        enc = _encode_rate_aware(signal, opts, exp, bpp, device, callback, phase)
        size = len(enc.data)
        report = {
            "target_bpp": bpp,
            "target_bytes": round(target),
            "attempts": [{"bytes": size, "bpp": size * 8 / pixels, "lambda": enc.float_metrics.get("lambda")}],
            "within_tolerance": abs(size - target) <= tolerance * target,
        }
        return enc, report
    # Trained weights entropy-code at about their depth once the per-row steps and the file's
    # framing are paid: NeRV 8.05 and HNeRV 7.46 / 8.16 bits a parameter at 8 bits (Bunny
    # 320x180 at 0.2 / 0.1 bpp, 1080p at 0.02). The 0.8 x bits guessed before sized the first
    # attempt 26-28 % too large (NeRV at 0.2 bpp, HNeRV at 1080p), and its refit made
    # `--seconds` twice the encode.
    bits_per_param = bits_per_param or float(exp.bits)
    tried: list[dict] = []
    best: Encoded | None = None
    started, budget = time.perf_counter(), opts.fit.seconds
    spec = get_spec(opts.model)
    cfg = base_config(spec, signal, opts.overrides)
    for attempt in range(attempts):
        params = max(int(target * 8 / bits_per_param), 64)
        # Small models step in sizes coarser than the sizing's 5 %: a size the family can
        # build within this rate's tolerance is as good a start (HNeRV at 1080p in 6-frame
        # GOPs, 0.02 bpp: 31,104 parameters asked, 29,136 buildable, -6.3 %). It is built from
        # the fields the search found (the search takes up to 3 s at 1080p: not twice a GOP).
        try:
            near, fields = closest_size(spec, cfg, params)
        except InrError:  # out of the family's range: the fit below says so
            near, fields = params, None
        sized = {"params": params}
        if fields is not None and abs(near - params) <= tolerance * params:
            params = near
            sized = {"params": None, "overrides": {**(opts.overrides or {}), **fields}}
        fit = opts.fit
        if budget is not None and attempt:
            # --seconds is the whole encode: a refit gets what is left, and none when that
            # is less than half the budget (an attempt that spent it is final; the report
            # then says it is out of tolerance)
            left = budget - (time.perf_counter() - started)
            if left < 0.5 * budget:
                break
            fit = dataclasses.replace(fit, seconds=left)
        try:
            enc = encode_signal(signal, dataclasses.replace(opts, fit=fit, **sized), exp, device, callback, phase)
        except InrError as exc:
            if best is not None:  # a re-size the family cannot build: the closest file so far stands
                break
            raise InrError(f"--bpp {bpp} cannot be met with {opts.model} ({exc})") from None
        size = len(enc.data)
        tried.append({"params": params, "bytes": size, "bpp": size * 8 / pixels, "bits_per_param": size * 8 / params})
        if best is None or abs(size - target) < abs(len(best.data) - target):
            best = enc
        if abs(size - target) <= tolerance * target:
            break
        bits_per_param = size * 8 / params
    assert best is not None
    report = {"target_bpp": bpp, "target_bytes": round(target), "attempts": tried, "within_tolerance": abs(len(best.data) - target) <= tolerance * target}
    return best, report
