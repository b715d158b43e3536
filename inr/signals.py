"""Signals as float tensors in [0, 1] with coordinate grids normalised to [-1, 1].

Coordinates are pixel *centres*: sample i of n sits at (2i + 1)/n - 1. That keeps the
continuous domain identical at every resolution, so rendering a 2x grid samples between
the training pixels instead of stretching the picture.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

KINDS = ("image", "video", "audio")


def axis_coords(n: int, device: torch.device | str | None = None, dtype=torch.float32) -> torch.Tensor:
    return (torch.arange(n, device=device, dtype=dtype) * 2 + 1) / n - 1


def coord_grid(shape: Sequence[int], device: torch.device | str | None = None, dtype=torch.float32) -> torch.Tensor:
    """Grid of shape (*shape, len(shape)); the last axis follows the order of `shape`."""
    axes = [axis_coords(n, device, dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


@dataclass
class Signal:
    """A sampled signal: `data` is (*spatial, C) in [0, 1].

    image: (H, W, C); video: (T, H, W, C); audio: (N, C). Coordinates follow the same axis
    order: (y, x) for images, (t, y, x) for video, (t,) for audio.
    """

    data: torch.Tensor
    kind: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown signal kind {self.kind!r}")
        expected = {"image": 3, "video": 4, "audio": 2}[self.kind]
        if self.data.ndim != expected:
            raise ValueError(f"{self.kind} signal needs {expected} dims, got shape {tuple(self.data.shape)}")

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[:-1])

    @property
    def channels(self) -> int:
        return int(self.data.shape[-1])

    @property
    def coord_dim(self) -> int:
        return len(self.spatial_shape)

    @property
    def num_samples(self) -> int:
        return int(self.data[..., 0].numel())

    def coords(self, device=None) -> torch.Tensor:
        return coord_grid(self.spatial_shape, device=device).reshape(-1, self.coord_dim)

    def values(self) -> torch.Tensor:
        return self.data.reshape(-1, self.channels)

    def to(self, device) -> "Signal":
        return Signal(self.data.to(device), self.kind, dict(self.meta))


def image_signal(pixels: torch.Tensor, **meta) -> Signal:
    """From an (H, W, C) uint8 or float tensor."""
    data = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels.float()
    return Signal(data, "image", meta)


def video_signal(frames: torch.Tensor, **meta) -> Signal:
    """From a (T, H, W, C) uint8 or float tensor."""
    data = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    return Signal(data, "video", meta)


def audio_signal(samples: torch.Tensor, **meta) -> Signal:
    """From an (N, C) float tensor in [-1, 1] (PCM convention), stored in [0, 1]."""
    return Signal((samples.float() + 1) / 2, "audio", meta)


def audio_pcm(data: torch.Tensor) -> torch.Tensor:
    """The inverse of `audio_signal`'s mapping: (N, C) in [0, 1] -> PCM in [-1, 1]."""
    return data.float() * 2 - 1


class CoordinateSampler:
    """Full-batch or random-batch sampling of (coords, values) pairs.

    Random batches draw from a dedicated generator so that a resumed fit draws exactly the
    batches the uninterrupted fit would have drawn.
    """

    def __init__(self, signal: Signal, batch_size: int | None, device: torch.device):
        self.coords = signal.coords(device)
        self.values = signal.values().to(device)
        n = self.coords.shape[0]
        self.batch_size = None if batch_size is None or batch_size >= n else int(batch_size)
        self.steps_per_epoch = 1 if self.batch_size is None else -(-n // self.batch_size)

    def sample(self, generator: torch.Generator, inputs=None) -> tuple:
        """(inputs, values) of the next batch. `inputs` are per-sample model inputs in the
        coordinates' order (default: the coordinates themselves; a hash grid's `LookupPlan`
        of them), a tensor or anything that a 1-D row tensor indexes."""
        inputs = self.coords if inputs is None else inputs
        if self.batch_size is None:
            return inputs, self.values
        rows = torch.randint(0, self.coords.shape[0], (self.batch_size,), generator=generator).to(self.coords.device)
        picked = inputs.index_select(0, rows) if isinstance(inputs, torch.Tensor) else inputs[rows]
        return picked, self.values.index_select(0, rows)


RENDER_CHUNK = 1 << 16  # coordinates per forward call when rendering a whole grid


@torch.no_grad()
def render(model: torch.nn.Module, shape: Sequence[int], device: torch.device, chunk: int = RENDER_CHUNK) -> torch.Tensor:
    """Evaluate a coordinate model on a grid of `shape`, in chunks; returns (*shape, C)."""
    coords = coord_grid(shape, device=device).reshape(-1, len(shape))
    outs = [model(coords[i : i + chunk]).float() for i in range(0, coords.shape[0], chunk)]
    out = torch.cat(outs, dim=0)
    return out.reshape(*shape, -1)
