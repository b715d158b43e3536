"""Multiresolution hash grid (Instant-NGP, Mueller et al. 2022) with two backends.

Both backends share `HashGridConfig`, the parameter count and the parameter layout, and
follow tiny-cuda-nn's own indexing: level l has scale s_l = N_min * b^l - 1 and
ceil(s_l) + 1 vertices per axis; a point sits at x * s_l + 0.5 in vertex units; a level
whose vertex count fits in its table is indexed densely (row-major, first axis fastest),
others through the spatial hash XOR_i(c_i * pi_i) with primes (1, 2654435761, 805459861);
every index is taken modulo the level's table size. Tables are initialised U(-1e-4, 1e-4).

The `torch` backend is vectorised PyTorch and runs anywhere; `tcnn` wraps tiny-cuda-nn's
fused kernel and is picked automatically on CUDA when it imports.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import nn

log = logging.getLogger("inr")

PRIMES = (1, 2654435761, 805459861)


@dataclass
class HashGridConfig:
    in_dim: int = 2
    n_levels: int = 16
    n_features: int = 2
    table_size: int = 1 << 19  # T: entries per level
    base_resolution: int = 16  # N_min
    max_resolution: int = 2048  # N_max

    @property
    def per_level_scale(self) -> float:
        if self.n_levels == 1:
            return 1.0
        return math.exp((math.log(self.max_resolution) - math.log(self.base_resolution)) / (self.n_levels - 1))

    def level_scale(self, level: int) -> float:
        return math.exp2(level * math.log2(self.per_level_scale)) * self.base_resolution - 1.0

    def level_resolution(self, level: int) -> int:
        return int(math.ceil(self.level_scale(level))) + 1

    def level_table_size(self, level: int) -> int:
        dense = self.level_resolution(level) ** self.in_dim
        dense = -(-dense // 8) * 8  # tiny-cuda-nn pads dense levels to a multiple of 8
        return min(dense, self.table_size)

    def level_is_hashed(self, level: int) -> bool:
        return self.level_resolution(level) ** self.in_dim > self.level_table_size(level)

    @property
    def num_params(self) -> int:
        return self.n_features * sum(self.level_table_size(l) for l in range(self.n_levels))

    @property
    def out_dim(self) -> int:
        return self.n_levels * self.n_features


def available_backends() -> list[str]:
    backends = ["torch"]
    if torch.cuda.is_available():
        try:
            import tinycudann  # noqa: F401

            backends.append("tcnn")
        except ImportError:
            pass
    return backends


class TorchHashGrid(nn.Module):
    """Pure PyTorch backend, vectorised over points and corners, looped over levels."""

    def __init__(self, cfg: HashGridConfig):
        super().__init__()
        if cfg.in_dim > len(PRIMES):
            raise ValueError(f"hash grid supports up to {len(PRIMES)}-D inputs")
        self.cfg = cfg
        sizes = [cfg.level_table_size(l) for l in range(cfg.n_levels)]
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        self.level_offsets = offsets
        self.params = nn.Parameter(torch.empty(offsets[-1], cfg.n_features).uniform_(-1e-4, 1e-4))
        corners = torch.tensor([[(c >> d) & 1 for d in range(cfg.in_dim)] for c in range(1 << cfg.in_dim)])
        self.register_buffer("corners", corners, persistent=False)  # (2^d, d)
        self.register_buffer("primes", torch.tensor(PRIMES[: cfg.in_dim], dtype=torch.int64), persistent=False)

    def _indices(self, level: int, grid: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        res, size = cfg.level_resolution(level), cfg.level_table_size(level)
        if cfg.level_is_hashed(level):
            prod = grid * self.primes
            idx = prod[..., 0]
            for d in range(1, cfg.in_dim):
                idx = torch.bitwise_xor(idx, prod[..., d])
            idx = idx & 0xFFFFFFFF  # uint32 arithmetic, as in the CUDA kernel
        else:
            strides = torch.tensor([res**d for d in range(cfg.in_dim)], device=grid.device, dtype=torch.int64)
            idx = (grid * strides).sum(-1)
        return idx % size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        x01 = ((x + 1) * 0.5).clamp(0.0, 1.0)
        feats = []
        for level in range(cfg.n_levels):
            pos = x01 * cfg.level_scale(level) + 0.5
            base = torch.floor(pos)
            frac = pos - base  # (N, d)
            grid = base.long()[:, None, :] + self.corners[None]  # (N, 2^d, d)
            idx = self._indices(level, grid) + self.level_offsets[level]
            w = torch.where(self.corners[None].bool(), frac[:, None, :], 1 - frac[:, None, :]).prod(-1)
            table_feats = self.params[idx]  # (N, 2^d, F)
            feats.append((table_feats * w[..., None].to(table_feats.dtype)).sum(1))
        return torch.cat(feats, dim=-1)


class TcnnHashGrid(nn.Module):
    """tiny-cuda-nn backend; same config, same flat parameter vector."""

    def __init__(self, cfg: HashGridConfig):
        super().__init__()
        import tinycudann as tcnn

        log2 = int(math.log2(cfg.table_size))
        if 1 << log2 != cfg.table_size:
            raise ValueError("tcnn backend needs a power-of-two table_size")
        self.cfg = cfg
        self.enc = tcnn.Encoding(
            cfg.in_dim,
            {
                "otype": "HashGrid",
                "n_levels": cfg.n_levels,
                "n_features_per_level": cfg.n_features,
                "log2_hashmap_size": log2,
                "base_resolution": cfg.base_resolution,
                "per_level_scale": cfg.per_level_scale,
            },
            dtype=torch.float32,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(((x + 1) * 0.5).clamp(0.0, 1.0)).float()


class HashGridEncoding(nn.Module):
    """Hash grid behind one interface; `backend` is "auto", "torch" or "tcnn"."""

    def __init__(self, cfg: HashGridConfig, backend: str = "auto"):
        super().__init__()
        self.cfg = cfg
        if backend == "auto":
            pow2 = cfg.table_size & (cfg.table_size - 1) == 0
            backend = "tcnn" if "tcnn" in available_backends() and pow2 else "torch"
        if backend not in ("torch", "tcnn"):
            raise ValueError(f"unknown hash grid backend {backend!r}")
        self.backend = backend
        self.impl = TcnnHashGrid(cfg) if backend == "tcnn" else TorchHashGrid(cfg)
        log.info("hash grid backend: %s (%d params, %d levels)", backend, cfg.num_params, cfg.n_levels)

    @property
    def out_dim(self) -> int:
        return self.cfg.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.impl(x)
