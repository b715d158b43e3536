"""Fourier encodings: deterministic NeRF-style bands and Gaussian random features."""
from __future__ import annotations

import math

import torch
from torch import nn


class PositionalEncoding(nn.Module):
    """gamma(x) = [sin(b^k pi x), cos(b^k pi x)] for k < levels (NeRF; NeRV uses b=1.25, 80 levels).

    `include_input` prepends x itself, which coordinate MLPs like but NeRV does not use.
    """

    def __init__(self, in_dim: int, levels: int, base: float = 2.0, include_input: bool = False):
        super().__init__()
        self.in_dim, self.levels, self.base, self.include_input = in_dim, levels, base, include_input
        self.register_buffer("freqs", (base ** torch.arange(levels, dtype=torch.float64) * math.pi).float(), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.in_dim * (2 * self.levels + int(self.include_input))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ang = (x[..., :, None] * self.freqs).flatten(-2)  # (..., in_dim * levels)
        parts = [torch.sin(ang), torch.cos(ang)]
        if self.include_input:
            parts.insert(0, x)
        return torch.cat(parts, dim=-1)


class GaussianFourierFeatures(nn.Module):
    """[sin(2 pi B x), cos(2 pi B x)] with B ~ N(0, sigma^2) fixed at init (Tancik et al. 2020).

    B is a buffer, not a parameter: it is regenerated from `seed` at load time, so it costs
    no bits in a compressed file.
    """

    def __init__(self, in_dim: int, num_features: int = 256, sigma: float = 10.0, seed: int = 0):
        super().__init__()
        self.in_dim, self.num_features, self.sigma = in_dim, num_features, sigma
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(in_dim, num_features, generator=gen) * sigma, persistent=False)

    @property
    def out_dim(self) -> int:
        return 2 * self.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ang = 2 * math.pi * (x @ self.B.to(x.dtype))
        return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)
