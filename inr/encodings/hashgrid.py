"""Multiresolution hash grid (Instant-NGP, Mueller et al. 2022) with two backends.

Both backends share `HashGridConfig`, the parameter count and the parameter layout, and
follow tiny-cuda-nn's own indexing: level l has scale s_l = N_min * b^l - 1 and
ceil(s_l) + 1 vertices per axis; a point sits at x * s_l + 0.5 in vertex units; a level
whose vertex count fits in its table is indexed densely (row-major, first axis fastest),
others through the spatial hash XOR_i(c_i * pi_i) with primes (1, 2654435761, 805459861);
every index is taken modulo the level's table size. Tables are initialised U(-1e-4, 1e-4).

The `torch` backend is vectorised PyTorch and runs anywhere; `tcnn` runs tiny-cuda-nn's
fused kernel on the same table and is picked automatically for CUDA inputs when it imports.
"""
from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=None)
def _tcnn_importable() -> bool:
    try:
        import tinycudann  # noqa: F401
    except (ImportError, OSError):  # tcnn raises OSError when it finds no usable GPU
        return False
    return True


def available_backends() -> list[str]:
    """Backends that can run here (cached import probe: "auto" asks on every call)."""
    return ["torch", "tcnn"] if torch.cuda.is_available() and _tcnn_importable() else ["torch"]


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
        return self.lookup(((x + 1) * 0.5).clamp(0.0, 1.0), self.params)

    def lookup(self, x01: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Features of points `x01` in [0, 1]^d from `table` (entries, features)."""
        cfg = self.cfg
        feats = []
        for level in range(cfg.n_levels):
            pos = x01 * cfg.level_scale(level) + 0.5
            base = torch.floor(pos)
            frac = pos - base  # (N, d)
            grid = base.long()[:, None, :] + self.corners[None]  # (N, 2^d, d)
            idx = self._indices(level, grid) + self.level_offsets[level]
            w = torch.where(self.corners[None].bool(), frac[:, None, :], 1 - frac[:, None, :]).prod(-1)
            table_feats = table[idx]  # (N, 2^d, F)
            feats.append((table_feats * w[..., None].to(table_feats.dtype)).sum(1))
        return torch.cat(feats, dim=-1)


class TcnnKernel:
    """tiny-cuda-nn's fused hash-grid kernel, run on parameters it does not own.

    Not an nn.Module on purpose: the table lives in `TorchHashGrid.params` (shape
    (entries, features), the torch layout) whichever backend runs, so state dicts and `.inr`
    files are the same on every machine. tcnn's flat parameter vector has the same memory
    order, so each call hands it a flat view of that table (`tcnn.Module.forward` reads
    `self.params`); gradients flow back through the view.
    """

    def __init__(self, cfg: HashGridConfig):
        import tinycudann as tcnn

        self.enc = tcnn.Encoding(
            cfg.in_dim,
            {
                "otype": "HashGrid",
                "n_levels": cfg.n_levels,
                "n_features_per_level": cfg.n_features,
                "log2_hashmap_size": int(math.log2(cfg.table_size)),
                "base_resolution": cfg.base_resolution,
                "per_level_scale": cfg.per_level_scale,
            },
            dtype=torch.float32,
        )
        if self.enc.params.numel() != cfg.num_params:
            raise ValueError(f"tcnn hash grid has {self.enc.params.numel()} parameters, expected {cfg.num_params}")
        del self.enc.params  # its own table would be a second, unused copy

    def __call__(self, x01: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        self.enc.params = table.reshape(-1)
        return self.enc(x01).float()


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _accept_legacy_tcnn_key(module: "HashGridEncoding", state_dict: dict, prefix: str, *args) -> None:
    """Checkpoints written by the old tcnn wrapper stored the table flat as `impl.enc.params`."""
    old = state_dict.pop(prefix + "impl.enc.params", None)
    if old is not None:
        state_dict[prefix + "impl.params"] = old.reshape(-1, module.cfg.n_features)


class HashGridEncoding(nn.Module):
    """Hash grid behind one interface; `backend` is "auto", "torch" or "tcnn".

    The backend is a runtime choice, never part of a checkpoint or file: both run on the same
    parameter (`impl.params`), and "auto" picks tcnn per call, only for CUDA inputs when
    tiny-cuda-nn imports and the table size is a power of two.
    """

    def __init__(self, cfg: HashGridConfig, backend: str = "auto"):
        super().__init__()
        if backend not in ("auto", "torch", "tcnn"):
            raise ValueError(f"unknown hash grid backend {backend!r}")
        if backend == "tcnn" and not _is_pow2(cfg.table_size):
            raise ValueError("tcnn backend needs a power-of-two table_size")
        self.cfg, self.backend = cfg, backend
        self.impl = TorchHashGrid(cfg)
        self._kernel: TcnnKernel | None = None
        self.register_load_state_dict_pre_hook(_accept_legacy_tcnn_key)
        log.info("hash grid: %d params, %d levels, backend %s", cfg.num_params, cfg.n_levels, backend)

    def active_backend(self, device: torch.device) -> str:
        """The backend a call on `device` runs on."""
        if self.backend != "auto":
            return self.backend
        ok = device.type == "cuda" and _is_pow2(self.cfg.table_size) and "tcnn" in available_backends()
        return "tcnn" if ok else "torch"

    @property
    def out_dim(self) -> int:
        return self.cfg.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lookup(x, self.impl.params)

    def lookup(self, x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Features of points `x` in [-1, 1]^d from `table`, a tensor laid out as `impl.params`
        ((entries, features)), on this call's backend: the table may be computed (the
        `shacira` family decodes it from quantized latents) rather than be the parameter."""
        x01 = ((x + 1) * 0.5).clamp(0.0, 1.0)
        if self.active_backend(x.device) == "torch":
            return self.impl.lookup(x01, table)
        if self._kernel is None:
            self._kernel = TcnnKernel(self.cfg)
        return self._kernel(x01, table)
