"""Fit tasks: how a model family meets a signal (batches, losses, full reconstruction)."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _ssim
from torch import nn

from inr.device import synchronize
from inr.errors import InrError
from inr.metrics import audio_snr, ms_ssim_frames, per_frame_psnr, psnr, ssim
from inr.signals import CoordinateSampler, Signal, coord_grid, render


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """'l2' (HNeRV, SIREN, Instant-NGP), 'l1', or 'l1_ssim' = 0.7 L1 + 0.3 (1 - SSIM) (NeRV;
    `pred` and `target` are frames (B, C, H, W))."""
    if kind == "l2":
        return F.mse_loss(pred, target)
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "l1_ssim":
        win = min(11, min(pred.shape[-2:]) // 2 * 2 - 1)
        s = _ssim(pred.float().clamp(0, 1), target.float(), data_range=1.0, size_average=True, win_size=max(win, 3))
        return 0.7 * F.l1_loss(pred, target) + 0.3 * (1 - s)
    raise ValueError(f"unknown loss {kind!r}")


def loss_and_mse(pred: torch.Tensor, target: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss and the batch MSE the trainer reports as PSNR. Under 'l2' they are
    one number: computing it twice cost a NeRV-size step (2 x 3 x 160 x 320) a second pass over
    the frames and a graph node nobody differentiates; other losses get the MSE without a graph."""
    loss = reconstruction_loss(pred, target, kind)
    if kind == "l2":
        return loss, loss.detach()
    with torch.no_grad():
        return loss, F.mse_loss(pred, target)


INPUT_CACHE_BYTES = 512 << 20  # largest plan a fit keeps (2-D hash grid, 16 levels x 2 features: 1 KiB a pixel)


class CoordTask:
    """Coordinate MLPs on any signal: random batches of (coords, values), or the full grid.

    A model may precompute what it does to its inputs alone (`plan_inputs`: the hash grid's
    table rows and interpolation weights); with the speed plan's input cache on and the plan
    of every sample under INPUT_CACHE_BYTES, that runs once per fit and batches are cut from
    it, the same numbers as computing them per batch."""

    def __init__(self, signal: Signal, device: torch.device, batch_size: int | None = None, loss: str = "l2"):
        if loss not in ("l2", "l1"):  # a batch of scattered coordinates has no frame for SSIM
            raise InrError(f"coordinate models train with loss l2 or l1, not '{loss}'")
        self.signal, self.device, self.loss_kind = signal, device, loss
        self.sampler = CoordinateSampler(signal, batch_size, device)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.input_plan = None  # `prepare`'s cache: the model's plan of every coordinate

    def attach(self, state) -> None:
        """The loss does not change over the fit."""

    def prepare(self, model: nn.Module, speed) -> None:
        """Plan every coordinate once when the speed plan allows it, the model has a plan and
        it fits the cache (its size is measured on a few samples first)."""
        self.input_plan = None
        plan_inputs = getattr(model, "plan_inputs", None)
        if not speed.input_cache or plan_inputs is None:
            return
        coords = self.sampler.coords
        probe = plan_inputs(coords[:256])
        if probe is None or probe.nbytes / len(probe) * coords.shape[0] > INPUT_CACHE_BYTES:
            return
        self.input_plan = plan_inputs(coords)

    def batch(self, generator: torch.Generator):
        """(model inputs, values) of the next batch: coordinates, or rows of the input plan."""
        return self.sampler.sample(generator, self.input_plan)

    def batch_loss(self, model: nn.Module, generator: torch.Generator, step: int):
        inputs, values = self.batch(generator)
        pred = model(inputs).float()
        return loss_and_mse(pred, values, self.loss_kind)

    def reconstruct(self, model: nn.Module, scale: float = 1.0) -> torch.Tensor:
        shape = list(self.signal.spatial_shape)
        if scale != 1.0:  # time is not rescaled: a 2x video has the same frames, twice the pixels
            start = 1 if self.signal.kind == "video" else 0
            shape = shape[:start] + [max(1, round(n * scale)) for n in shape[start:]]
        model.eval()
        return render(model, shape, self.device).clamp(0, 1)

    @torch.no_grad()
    def preview(self, model: nn.Module) -> torch.Tensor:
        """One picture of the current fit, (H, W, C): the image, or the middle video frame."""
        was = model.training
        model.eval()
        shape = list(self.signal.spatial_shape)
        if self.signal.kind == "video":
            t = shape[0]
            coords = coord_grid(shape[1:], device=self.device)
            tt = torch.full_like(coords[..., :1], (2 * (t // 2) + 1) / t - 1)
            flat = torch.cat([tt, coords], dim=-1).reshape(-1, 3)
            out = torch.cat([model(flat[i : i + 65536]) for i in range(0, flat.shape[0], 65536)]).reshape(*shape[1:], -1)
        else:
            out = render(model, shape, self.device)
        model.train(was)
        return out.float().clamp(0, 1).cpu()

    def evaluate(self, model: nn.Module, full: bool = True) -> dict:
        t0 = time.perf_counter()
        recon = self.reconstruct(model)
        synchronize(self.device)
        seconds = time.perf_counter() - t0
        target = self.signal.data.to(recon.device)
        out: dict = {"psnr": psnr(recon, target), "reconstruction": recon, "decode_seconds": seconds}
        if self.signal.kind == "video":  # PSNR as the mean of the frames', whatever `full` asks
            out.update(_video_metrics(recon.cpu(), target.cpu(), seconds, msssim=full))
        elif full and self.signal.kind == "image":
            out["ssim"] = ssim(recon.cpu(), target.cpu())
        elif full:
            out["snr"] = audio_snr(recon.cpu(), target.cpu())
        return out


def _video_metrics(recon: torch.Tensor, target: torch.Tensor, seconds: float, msssim: bool = True) -> dict:
    frames = per_frame_psnr(recon, target)
    ms = ms_ssim_frames(recon, target) if msssim else None
    return {
        "psnr": sum(frames) / len(frames),
        "per_frame_psnr": frames,
        **({"msssim": sum(ms) / len(ms)} if ms else {}),
        "decode_seconds": seconds,
        "decode_fps": len(frames) / max(seconds, 1e-9),
    }


class FrameTask:
    """Frame-wise video models (NeRV family): epochs over shuffled frames in batches.

    Each epoch's order is drawn from a generator seeded by (seed, epoch), so the batch of any
    step is a pure function of the step number and a resumed fit sees the same batches.
    """

    def __init__(self, signal: Signal, device: torch.device, batch_size: int = 1, loss: str = "l2", seed: int = 0):
        if signal.kind != "video":
            raise ValueError("frame models need a video signal")
        self.signal, self.device, self.loss_kind, self.seed = signal, device, loss, seed
        self.frames = signal.data.permute(0, 3, 1, 2).contiguous().to(device)  # (T, C, H, W)
        self.num_frames = self.frames.shape[0]
        self.batch_size = max(1, min(batch_size, self.num_frames))
        self.steps_per_epoch = -(-self.num_frames // self.batch_size)

    def _batch_indices(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.num_frames, generator=gen)
        return order[pos * self.batch_size : (pos + 1) * self.batch_size].to(self.device)

    def attach(self, state) -> None:
        """The loss does not change over the fit."""

    def batch_loss(self, model: nn.Module, generator: torch.Generator, step: int):
        idx = self._batch_indices(step)
        target = self.frames[idx]
        pred = model(idx, target).float()
        return loss_and_mse(pred, target, self.loss_kind)

    @torch.no_grad()
    def reconstruct(self, model: nn.Module, batch: int = 4) -> torch.Tensor:
        model.eval()
        outs = []
        for i in range(0, self.num_frames, batch):
            idx = torch.arange(i, min(i + batch, self.num_frames), device=self.device)
            outs.append(model(idx, self.frames[idx]).float().clamp(0, 1))
        return torch.cat(outs).permute(0, 2, 3, 1)  # (T, H, W, C)

    @torch.no_grad()
    def preview(self, model: nn.Module) -> torch.Tensor:
        """The middle frame as the model reconstructs it now, (H, W, C)."""
        was = model.training
        model.eval()
        idx = torch.tensor([self.num_frames // 2], device=self.device)
        out = model(idx, self.frames[idx]).float().clamp(0, 1)[0].permute(1, 2, 0).cpu()
        model.train(was)
        return out

    def evaluate(self, model: nn.Module, full: bool = True) -> dict:
        model.eval()
        model.prepare_decoding(self.signal, self.device)  # time the decoder alone, as a player would
        t0 = time.perf_counter()
        recon = self.reconstruct(model)
        synchronize(self.device)
        seconds = time.perf_counter() - t0
        out = _video_metrics(recon.cpu(), self.signal.data.cpu(), seconds, msssim=full)
        out["reconstruction"] = recon
        return out
