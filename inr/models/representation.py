"""The representation interface: what a model family must answer for the rest of `inr`.

The fitting loop, the exporter, checkpoints, the decoder's header checks and every front end
call only these methods, never a family's own attributes, so a family is added by
subclassing one of the two bases below and registering it (see README, "Adding a family"):

- how it is trained on a signal: `make_task` (its batches and loss), `start_from` (an
  optional start computed from the signal), `rate_bits` (an optional differentiable rate:
  a family that has one is trained for distortion + lambda x rate and sized by its rate,
  `config_for_rate`);
- how it renders: `render` (the decoded signal at a requested shape) and `decode_probe`
  (one render batch on meta tensors, for the decoder's cost checks);
- what a file stores: `stored_tensors` (network weights, quantized per row at the weight bit
  depth or the depth `weight_bits` asks for, plus `coded_buffers`, per-item tensors such as HNeRV's embeddings, quantized at the
  buffer bit depth), `load_stored_tensors`, `stored_param_count`, and `side_codec` for
  anything the family codes itself (the latent grids' LATS section);
- what it needs before decoding from a fitted state: `prepare_decoding` (HNeRV embeds every
  frame once, so a decode runs the decoder alone, as a player would).

Two bases cover today's families: `CoordinateRepresentation` (f(coords) -> values, any
resolution) and `FrameRepresentation` (f(frame index) -> frame, at the fitted resolution).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

import torch
from torch import nn

from inr.errors import InrError

if TYPE_CHECKING:  # the pipeline imports the models, never the other way round at run time
    from inr.export.schema import Probe
    from inr.pipeline import FitOptions
    from inr.signals import Signal


class Representation(nn.Module):
    """Base of every family. Subclasses set `config` in `__init__` and implement `forward`,
    `make_task`, `render` and `decode_probe`; the storage methods have working defaults."""

    # Parameter-name prefixes that exist only to fit and are never stored (HNeRV's encoder).
    fit_only: ClassVar[tuple[str, ...]] = ()
    # Parameter-name prefixes the family's side codec stores itself (not as quantized weights).
    side_tensors: ClassVar[tuple[str, ...]] = ()
    # Whether `render` accepts any spatial resolution (coordinate models) or only the fitted one.
    any_resolution: ClassVar[bool] = False
    # Speed plan claims (inr.fit.plan_for): bf16 autocast (CPU or CUDA) was measured not to
    # cost quality for this family; channels-last memory pays (None: decided by whether it has convs).
    bf16_safe: ClassVar[bool] = False
    channels_last_friendly: ClassVar[bool | None] = None
    # The reconstruction losses the family's task trains with (checked by inr.options).
    losses: ClassVar[tuple[str, ...]] = ("l2",)

    config: Any

    @classmethod
    def for_decoding(cls, cfg: Any) -> "Representation":
        """The model a decoder builds: fit-time-only parts left out."""
        return cls(cfg)

    # ---------------------------------------------------------------- training
    @classmethod
    def config_for_rate(cls, cfg: Any, bits: float) -> Any:
        """A rate-aware family's config for a file of about `bits` (its size is its rate, so
        the rate is what sizes it; explicit overrides still win). Default: unchanged."""
        return cfg

    def make_task(self, signal: "Signal", device: torch.device, opts: "FitOptions"):
        """The fit task (batches, loss, reconstruction, evaluation) for this family on `signal`."""
        raise NotImplementedError

    def start_from(self, signal: "Signal") -> None:
        """An optional start computed from the signal, run once on a fresh model before a fit
        (never at decode)."""

    def rate_bits(self) -> torch.Tensor | None:
        """Differentiable bits of what the file will store, or None for families whose size
        is set by their parameter count (fit, then prune and quantize)."""
        return None

    # ---------------------------------------------------------------- rendering
    def render(self, shape: list[int], device: torch.device) -> torch.Tensor:
        """The decoded signal, (*spatial, C) in [0, 1] on the CPU, for the signal shape `shape`
        (channels last)."""
        raise NotImplementedError

    @classmethod
    def fit_memory(cls, frames: int, height: int, width: int, params: int) -> int:
        """Bytes a fit of a `frames` x height x width video with `params` stored parameters
        holds beyond the interpreter and the uint8 frames: the GOP planner sizes groups of
        frames by it. Here, for the fit-then-compress families: three float copies of the
        signal (target, reconstruction, evaluation), a frame batch's live activations with
        their backward (512 bytes a pixel, generous), and the weights with their gradients and
        two Adam moments."""
        pixels = height * width
        return frames * pixels * 3 * 12 + pixels * 512 + params * 16

    def render_frames(self, shape: list[int], device: torch.device, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        """Frames start .. stop - 1 of a decoded video of shape `shape`, a few at a time
        ((n, H, W, C) in [0, 1] on the CPU): what streaming decoders and metrics read, so
        their memory follows a render batch, not the clip. This base renders the whole
        signal once; families that render frame by frame do better."""
        yield self.render(shape, device)[start:stop]

    def decode_probe(self, shape: list[int]) -> "Probe":
        """One render batch for the signal shape `shape`, built on meta tensors: the decoder
        runs it to check the output shape and to measure a whole decode's cost."""
        raise NotImplementedError

    def prepare_decoding(self, signal: "Signal", device: torch.device) -> None:
        """Compute from the signal whatever decoding needs beyond the weights (no-op here)."""

    # ---------------------------------------------------------------- storage
    def coded_buffers(self) -> dict[str, torch.Tensor]:
        """Tensors other than parameters that a file stores, quantized at the buffer bit depth."""
        return {}

    def stored_weights(self) -> dict[str, torch.Tensor]:
        """The parameters a file stores as quantized weights (pruning and QAT apply to these):
        all outside `fit_only` and `side_tensors`."""
        skip = self.fit_only + self.side_tensors
        return {n: p.detach() for n, p in self.named_parameters() if not n.startswith(skip)}

    def weight_bits(self, bits: int) -> dict[str, int]:
        """The bit depth each stored weight is quantized at when the file's weight depth is
        `bits`: that depth for all here; a family with a tensor far more sensitive than the
        rest (an audio SIREN's first layer) asks for more for it."""
        return {n: bits for n in self.stored_weights()}

    def stored_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a file stores as quantized tensors, by name, in file order: the stored
        weights, then `coded_buffers()`."""
        return self.stored_weights() | {n: t.detach() for n, t in self.coded_buffers().items()}

    def load_stored_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load (dequantized) stored tensors; a coded buffer is set through `set_buffer`."""
        params = dict(self.named_parameters())
        buffers = self.coded_buffers()
        with torch.no_grad():
            for name, value in tensors.items():
                if name in params:
                    params[name].copy_(value)
                elif name in buffers:
                    self.set_buffer(name, value)
                else:
                    raise InrError(f"{type(self).__name__} stores no tensor {name!r}")

    def set_buffer(self, name: str, value: torch.Tensor) -> None:
        raise InrError(f"{type(self).__name__} has no coded buffer {name!r}")

    def stored_param_count(self) -> int:
        """Values a file carries: stored tensors plus the side codec's tensors."""
        skip = self.fit_only
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith(skip)) + sum(
            t.numel() for t in self.coded_buffers().values()
        )

    def side_codec(self):
        """An object with `header_key`, `encode(model) -> (header value, {tag: bytes})` and
        `decode(model, header value, sections)` for what the family codes itself, or None."""
        return None

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors beyond the state dict that a checkpoint keeps (a fitted state's buffers)."""
        return {n: t for n, t in self.coded_buffers().items() if t is not None}

    def load_checkpoint_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, value in tensors.items():
            self.set_buffer(name, value)


class CoordinateRepresentation(Representation):
    """f(coords in [-1, 1]^d) -> values: images, video and audio at any resolution."""

    any_resolution = True
    losses = ("l2", "l1")  # per-coordinate batches: no SSIM, which needs whole frames

    @classmethod
    def fit_memory(cls, frames: int, height: int, width: int, params: int) -> int:
        """The generic estimate, plus the task's input cache for a family that plans its inputs
        (`plan_inputs`: the hash grids): 8 corners x 16 levels x 2 features x 8 bytes a
        sample at the default grid, kept only while under `inr.tasks.INPUT_CACHE_BYTES`."""
        from inr.tasks import INPUT_CACHE_BYTES

        cache = frames * height * width * 2048 if hasattr(cls, "plan_inputs") else 0
        return super().fit_memory(frames, height, width, params) + (cache if cache <= INPUT_CACHE_BYTES else 0)

    def make_task(self, signal, device, opts):
        from inr.tasks import CoordTask

        # On a CPU many small random batches beat few full ones per second of compute (measured
        # on a 96x64x8 clip: 27.8 dB in 8 s vs 25.5 dB in 21 s); a GPU wants big batches.
        cap = 1 << 18 if device.type == "cuda" else 1 << 14
        default_batch = None if signal.num_samples <= cap else cap
        return CoordTask(signal, device, batch_size=opts.batch_size or default_batch, loss=opts.loss)

    @torch.no_grad()
    def render(self, shape, device):
        from inr.signals import render

        return render(self.to(device).eval(), list(shape[:-1]), device).clamp(0, 1).cpu()

    def decode_probe(self, shape):
        from inr.export.schema import Probe
        from inr.signals import RENDER_CHUNK

        samples = math.prod(shape[:-1])
        chunk = min(RENDER_CHUNK, samples)
        return Probe((torch.zeros(chunk, len(shape) - 1),), (chunk, shape[-1]), -(-samples // chunk))


class FrameRepresentation(Representation):
    """f(frame indices) -> frames (B, C, H, W): images are one-frame videos. Renders at the
    fitted resolution only."""

    RENDER_BATCH: ClassVar[int] = 4  # frames per render call
    # ... and at most this many pixels' worth of them (at least one frame): a decoder's
    # activations follow the batch, and four 1080p frames through HNeRV peaked at 1.2 GiB
    RENDER_PIXELS: ClassVar[int] = 1 << 19
    losses = ("l2", "l1", "l1_ssim")

    def make_task(self, signal, device, opts):
        from inr.tasks import FrameTask

        return FrameTask(signal, device, batch_size=opts.batch_size or 2, loss=opts.loss, seed=opts.fit.seed)

    def _fitted_shape(self) -> tuple[int, int, int]:
        """(frames, H, W) the model was fitted to (its config's fields of those names)."""
        cfg = self.config
        return cfg.frames, cfg.height, cfg.width

    def render_batch(self, frames: int, height: int, width: int) -> int:
        """Frames per render call at this size: RENDER_BATCH, fewer where their pixels pass
        RENDER_PIXELS."""
        return max(1, min(self.RENDER_BATCH, self.RENDER_PIXELS // max(1, height * width)))

    def _check_shape(self, shape) -> None:
        fitted = self._fitted_shape()
        if tuple(fitted[1:]) != tuple(shape[-3:-1]):
            raise InrError(f"{type(self).__name__} renders at its fitted resolution {fitted[2]}x{fitted[1]} only")

    @torch.no_grad()
    def render_frames(self, shape, device, start=0, stop=None):
        self._check_shape(shape)
        frames = shape[0] if len(shape) == 4 else 1
        stop = frames if stop is None else min(stop, frames)
        model = self.to(device).eval()
        batch = self.render_batch(frames, *shape[-3:-1])
        for i in range(start, stop, batch):
            out = model(torch.arange(i, min(i + batch, stop), device=device)).float().clamp(0, 1).cpu()
            yield out.permute(0, 2, 3, 1)

    @torch.no_grad()
    def render(self, shape, device):
        out = torch.cat(list(self.render_frames(shape, device)))
        return out if len(shape) == 4 else out[0]

    def decode_probe(self, shape):
        from inr.bitstream import BitstreamError
        from inr.export.schema import Probe

        frames = shape[0] if len(shape) == 4 else 1
        height, width, channels = shape[-3:]
        if tuple(self._fitted_shape()) != (frames, height, width):
            raise BitstreamError(f"header signal {shape} does not match the model config", part="header")
        batch = min(self.render_batch(frames, height, width), frames)
        return Probe((torch.arange(batch),), (batch, channels, height, width), -(-frames // batch))
