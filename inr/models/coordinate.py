"""Coordinate MLPs: f(coords) -> values, for images (2-D), video (3-D) and audio (1-D)."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from inr.encodings import GaussianFourierFeatures, HashGridConfig, HashGridEncoding, LookupPlan
from inr.models.registry import ModelSpec, OptimDefaults, register
from inr.models.representation import CoordinateRepresentation
from inr.models.schedules import FAST, PAPER


def _adapt_dims(cfg, signal):
    return dataclasses.replace(cfg, in_dim=signal.coord_dim, out_dim=signal.channels)


def _register(name: str, config_cls, model_cls, description: str, optim: OptimDefaults, adapt=_adapt_dims, width_field: str = "hidden"):
    register(
        ModelSpec(
            name=name,
            config_cls=config_cls,
            model_cls=model_cls,
            signals=("image", "video", "audio"),
            description=description,
            optim=dataclasses.replace(optim, fast=FAST[name], paper=PAPER[name]),
            adapt=adapt,
            width_field=width_field,
        )
    )


def relu_mlp(in_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """`layers` Linear+ReLU pairs: in_dim -> hidden -> ... -> hidden."""
    dims = [in_dim] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*mods)


# Ranges a decoder accepts for these config fields (`inr.export.schema`): every coordinate
# model shares the shape fields; each config adds its own. Widths are loose: the decoder's
# meta-device parameter count bounds them.
_DIM_LIMITS = {"in_dim": (1, 3), "out_dim": (1, 16), "hidden": (1, 1 << 24), "layers": (0, 64)}


# --------------------------------------------------------------------------- SIREN
@dataclass
class SirenConfig:
    """SIREN (Sitzmann et al. 2020): w0 = 30, Adam lr 1e-4 as in the paper's image fits."""

    in_dim: int = 2
    out_dim: int = 3
    hidden: int = 256
    layers: int = 3  # hidden sine layers after the first one
    w0: float = 30.0
    w0_first: float = 30.0

    LIMITS = {**_DIM_LIMITS, "w0": (1e-3, 1e4), "w0_first": (1e-3, 1e4)}


class SineLayer(nn.Module):
    def __init__(self, in_f: int, out_f: int, w0: float, first: bool):
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(in_f, out_f)
        # Paper init: first layer U(-1/n, 1/n); later layers U(-sqrt(6/n)/w0, sqrt(6/n)/w0), so that
        # pre-activations w0 * (Wx + b) stay ~ arcsine-distributed through depth.
        bound = 1.0 / in_f if first else math.sqrt(6.0 / in_f) / w0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)
            self.linear.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * self.linear(x))


class Siren(CoordinateRepresentation):
    def __init__(self, cfg: SirenConfig):
        super().__init__()
        self.config = cfg
        layers = [SineLayer(cfg.in_dim, cfg.hidden, cfg.w0_first, first=True)]
        layers += [SineLayer(cfg.hidden, cfg.hidden, cfg.w0, first=False) for _ in range(cfg.layers)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cfg.hidden, cfg.out_dim)
        bound = math.sqrt(6.0 / cfg.hidden) / cfg.w0
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound)
            self.head.bias.fill_(0.5)  # start at mid-grey: targets live in [0, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def weight_bits(self, bits: int) -> dict[str, int]:
        """A first layer faster than the rest (audio: w0_first in the hundreds) turns a weight
        error into a phase error w0_first times larger: at 8 bits it erased a 0.5 s clip
        (41 dB SNR before quantization, 0.7 dB after); each extra bit bought ~6 dB up to 16
        (35.8 dB), for 2 x hidden values. So that layer is stored at 16 bits."""
        out = super().weight_bits(bits)
        if self.config.w0_first > self.config.w0:
            out.update({n: 16 for n in out if n.startswith("body.0.")})
        return out


# Audio: the first layer's frequencies must span the clip's bandwidth, and with time mapped
# to [-1, 1] that grows with the duration (the SIREN paper uses w0_first = 3000 for its
# few-second clip). Measured here (20k parameters, 300 steps, a chirp + tones at 8 kHz): 0.5 s
# is best near 200 (45.7 dB SNR; 13.7 dB at the image default 30), 1.5 s near 650 (32.4 dB):
# both about 430 per second. Clips much longer than these have not been measured.
AUDIO_W0_PER_SECOND = 3000.0 / 7.0


def _adapt_siren(cfg: SirenConfig, signal) -> SirenConfig:
    cfg = _adapt_dims(cfg, signal)
    if signal.kind != "audio":
        return cfg
    rate = signal.meta.get("sample_rate")
    seconds = signal.spatial_shape[0] / rate if rate else 7.0  # no rate known: w0_first = 3000, the paper's
    return dataclasses.replace(cfg, w0_first=max(cfg.w0_first, AUDIO_W0_PER_SECOND * seconds))


_register(
    "siren", SirenConfig, Siren, "SIREN: MLP with sine activations (w0=30) and the paper's initialisation", OptimDefaults(lr=1e-4),
    adapt=_adapt_siren,
)


# --------------------------------------------------------------------------- Poly-INR
@dataclass
class PolyConfig:
    """Poly-INR (Singh et al. 2023): no positional encoding; after every ReLU the features are
    multiplied element-wise by an affine map of the coordinates, which raises the polynomial
    degree by one per layer."""

    in_dim: int = 2
    out_dim: int = 3
    hidden: int = 256
    layers: int = 6

    LIMITS = _DIM_LIMITS


class PolyINR(CoordinateRepresentation):
    def __init__(self, cfg: PolyConfig):
        super().__init__()
        self.config = cfg
        self.inp = nn.Linear(cfg.in_dim, cfg.hidden)
        self.linears = nn.ModuleList(nn.Linear(cfg.hidden, cfg.hidden) for _ in range(cfg.layers))
        self.affines = nn.ModuleList(nn.Linear(cfg.in_dim, cfg.hidden) for _ in range(cfg.layers))
        self.head = nn.Linear(cfg.hidden, cfg.out_dim)
        with torch.no_grad():
            for a in self.affines:  # start close to the identity product (x * 1)
                a.weight.normal_(0.0, 0.1)
                a.bias.fill_(1.0)
            self.head.bias.fill_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for lin, aff in zip(self.linears, self.affines):
            h = torch.relu(lin(h)) * aff(x)
        return self.head(h)


_register("poly", PolyConfig, PolyINR, "Poly-INR: ReLU MLP multiplied by affine maps of the coordinates, no encoding", OptimDefaults(lr=1e-3))


# --------------------------------------------------------------------------- Fourier-feature MLP
@dataclass
class FFNConfig:
    """Fourier-feature MLP (Tancik et al. 2020): Gaussian features, sigma = 10, 256 features."""

    in_dim: int = 2
    out_dim: int = 3
    num_features: int = 256
    sigma: float = 10.0
    hidden: int = 256
    layers: int = 3
    seed: int = 0

    LIMITS = {**_DIM_LIMITS, "num_features": (1, 1 << 24), "sigma": (1e-6, 1e6), "seed": (0, 2**63 - 1)}


class FourierFeatureMLP(CoordinateRepresentation):
    # bf16 autocast on CPU by default (inr.device.speed_plan): 2x per step, same PSNR (the
    # features are formed in fp32/float64 outside autocast; only the ReLU MLP runs in bf16).
    bf16_safe = True

    def __init__(self, cfg: FFNConfig):
        super().__init__()
        self.config = cfg
        self.encoding = GaussianFourierFeatures(cfg.in_dim, cfg.num_features, cfg.sigma, cfg.seed)
        self.body = relu_mlp(self.encoding.out_dim, cfg.hidden, cfg.layers)
        self.head = nn.Linear(cfg.hidden, cfg.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.encoding(x)))


_register("ffn", FFNConfig, FourierFeatureMLP, "Fourier-feature MLP: Gaussian random Fourier features (sigma=10) + ReLU MLP", OptimDefaults(lr=1e-3))


# --------------------------------------------------------------------------- hash grid + MLP
@dataclass
class HashMLPConfig:
    """Instant-NGP image setting: L=16, F=2, N_min=16, 2 hidden layers of 64 ReLU units,
    Adam(lr 1e-2, betas (0.9, 0.99), eps 1e-15). N_max follows the signal's resolution."""

    in_dim: int = 2
    out_dim: int = 3
    n_levels: int = 16
    n_features: int = 2
    table_size: int = 1 << 16
    base_resolution: int = 16
    max_resolution: int = 512
    hidden: int = 64
    layers: int = 2
    # Files written before the backend became a runtime choice carry a `backend` field.
    RETIRED_FIELDS: ClassVar[tuple[str, ...]] = ("backend",)

    LIMITS = {
        **_DIM_LIMITS, "n_levels": (1, 32), "n_features": (1, 16), "table_size": (1, 1 << 26),
        "base_resolution": (1, 1 << 16), "max_resolution": (1, 1 << 16), "backend": ("auto", "torch", "tcnn"),
    }

    def grid_config(self) -> HashGridConfig:
        return HashGridConfig(
            in_dim=self.in_dim,
            n_levels=self.n_levels,
            n_features=self.n_features,
            table_size=self.table_size,
            base_resolution=self.base_resolution,
            max_resolution=self.max_resolution,
        )


class PlannedInputs:
    """For a coordinate family whose `self.encoding` is a `HashGridEncoding`: its fit task may
    plan every training coordinate once (`inr.tasks.CoordTask.prepare`) and pass rows of the
    plan to `forward` in place of coordinates."""

    encoding: HashGridEncoding

    def plan_inputs(self, coords: torch.Tensor) -> LookupPlan | None:
        return self.encoding.plan(coords)


class HashGridMLP(PlannedInputs, CoordinateRepresentation):
    """`backend` (auto / torch / tcnn) is how this machine runs the grid, not part of the model:
    None takes $INR_HASHGRID_BACKEND, else "auto"."""

    def __init__(self, cfg: HashMLPConfig, backend: str | None = None):
        super().__init__()
        self.config = cfg
        backend = backend or os.environ.get("INR_HASHGRID_BACKEND", "auto")
        self.encoding = HashGridEncoding(cfg.grid_config(), backend=backend)
        self.body = relu_mlp(self.encoding.out_dim, cfg.hidden, cfg.layers)
        self.head = nn.Linear(cfg.hidden, cfg.out_dim)

    def forward(self, x: torch.Tensor | LookupPlan) -> torch.Tensor:
        return self.head(self.body(self.encoding(x)))


def adapt_hash_grid(cfg: HashMLPConfig, signal) -> HashMLPConfig:
    """Fit a hash-grid config (this family's or `shacira`'s) to the signal's dims and resolution."""
    # Finest level ~ finest sampled axis: finer tables only memorise hash collisions.
    finest = max(signal.spatial_shape)
    base = min(cfg.base_resolution, max(2, finest // 4))
    return dataclasses.replace(
        cfg, in_dim=signal.coord_dim, out_dim=signal.channels, max_resolution=max(finest, base + 1), base_resolution=base
    )


_register(
    "hashgrid",
    HashMLPConfig,
    HashGridMLP,
    "Instant-NGP: multiresolution hash grid + small ReLU MLP (torch or tiny-cuda-nn)",
    OptimDefaults(lr=1e-2, eps=1e-15, betas=(0.9, 0.99)),
    adapt=adapt_hash_grid,
    width_field="table_size",
)
