"""SHACIRA (Girish et al. 2023): a hash grid whose tables are quantized, entropy-coded latents.

The Instant-NGP model of the `hashgrid` family (multiresolution hash grid + small ReLU MLP),
but the table entries are integers: level l's entries are latent vectors z (one per table
slot, `n_features` wide) and its features are W_l z + b_l, a tiny learned linear decoder per
level. The latents are trained through the same quantization proxy as the `grid` family's
(uniform noise, then straight-through rounding) for MSE + lambda x their bits under a
factorized Laplace model with one learned (mean, log-scale) per level and channel, and the
file codes them with that model in section HLAT (`inr/export/shacira_codec.py`). The hash
grid is the fastest learner of the coordinate families; this makes it a codec as well.

Why decode the table rather than the looked-up features: the decoder is linear and the
interpolation weights of a lookup sum to one, so both give the same output; decoding the
table once per call keeps the lookup the hash grid's own (torch or tiny-cuda-nn, one
parameter layout), and the latents live where the hash grid keeps its table
(`encoding.impl.params`).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from inr.encodings import HashGridEncoding, LookupPlan
from inr.models.coordinate import HashMLPConfig, PlannedInputs, adapt_hash_grid, relu_mlp
from inr.models.grid import laplace_bits, quantize_latents
from inr.models.registry import ModelSpec, OptimDefaults, register
from inr.models.representation import CoordinateRepresentation
from inr.models.schedules import FAST, PAPER

# Decoder weights start at this multiple of the identity: one latent step is a feature step
# of 1/32 at the start. Measured on a 128x128 crop of the bundled Bunny frame at 1 bpp, 300
# steps: 32.0 dB, vs 28.2 dB with 1/16 (31.5 dB with 1/64).
INIT_STEP = 1.0 / 32


@dataclass
class ShaciraConfig(HashMLPConfig):
    """The hash grid + MLP of `hashgrid`, with a smaller default table (2^14 entries per
    level): every entry is a coded latent, and on a CPU the rate term is computed over all of
    them at every step."""

    table_size: int = 1 << 14


class ShaciraMLP(PlannedInputs, CoordinateRepresentation):
    """Quantized hash-grid latents -> per-level linear decoder -> hash-grid lookup -> MLP."""

    losses = ("l2",)  # its task minimises MSE + lambda x rate
    side_tensors = ("encoding.",)  # the latents travel in section HLAT, not as weights

    def __init__(self, cfg: ShaciraConfig, backend: str | None = None):
        super().__init__()
        self.config = cfg
        backend = backend or os.environ.get("INR_HASHGRID_BACKEND", "auto")
        self.encoding = HashGridEncoding(cfg.grid_config(), backend=backend)
        levels, feats = cfg.n_levels, cfg.n_features
        self.decoder_weight = nn.Parameter(torch.eye(feats).repeat(levels, 1, 1) * INIT_STEP)  # (L, latent, feature)
        self.decoder_bias = nn.Parameter(torch.zeros(levels, feats))
        # Laplace (mean, log-scale) per level and channel. The start's latents all round to 0:
        # a scale of 0.05 makes them nearly free, where scale 1 charged 1.3 bits each.
        self.rate_model = nn.Parameter(torch.stack([torch.zeros(levels, feats), torch.full((levels, feats), math.log(0.05))], dim=-1))
        self.body = relu_mlp(self.encoding.out_dim, cfg.hidden, cfg.layers)
        self.head = nn.Linear(cfg.hidden, cfg.out_dim)
        with torch.no_grad():
            self.latents.uniform_(-0.5, 0.5)  # rounds to 0: the fit starts from a flat picture
        level_of_entry = torch.cat([torch.full((s.stop - s.start,), l, dtype=torch.long) for l, s in enumerate(self.level_slices())])
        # The level of every table entry: the decoder and the rate run as a few whole-table ops
        # rather than a dozen small ones per level (on a loaded 2-core CPU, each small op's
        # thread hand-off cost more than its work: 100 s for a 60-step fit instead of 2 s).
        self.register_buffer("level_of_entry", level_of_entry, persistent=False)
        self.quant_mode = "noise"  # while training: "noise" or "ste" (the task sets it); eval always rounds

    @property
    def latents(self) -> nn.Parameter:
        """(entries, n_features) float latents, levels back to back (`level_slices`)."""
        return self.encoding.impl.params

    def level_slices(self) -> list[slice]:
        offsets = self.encoding.impl.level_offsets
        return [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:])]

    # ---------------------------------------------------------------- the model
    def quantized_latents(self) -> torch.Tensor:
        return quantize_latents(self.latents, self.quant_mode if self.training else "round")

    def decoded_table(self, q: torch.Tensor) -> torch.Tensor:
        """Latents (entries, F) -> hash-table features (entries, F): z W_l + b_l for an entry of
        level l."""
        lv = self.level_of_entry
        return torch.einsum("ei,eif->ef", q, self.decoder_weight[lv]) + self.decoder_bias[lv]

    def render_points(self, x: torch.Tensor | LookupPlan, q: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.encoding.lookup(x, self.decoded_table(q))))

    def forward(self, x: torch.Tensor | LookupPlan) -> torch.Tensor:
        return self.render_points(x, self.quantized_latents())

    def rate_bits(self, latents: torch.Tensor | None = None) -> torch.Tensor:
        """Bits of the latents under the factorized Laplace model: what section HLAT pays
        (to within the coder's rounding of the parameters and its final word)."""
        q = latents if latents is not None else self.quantized_latents()
        params = self.rate_model[self.level_of_entry]  # (entries, F, 2)
        return laplace_bits(q, params[..., 0], params[..., 1])

    # ---------------------------------------------------------------- rate-aware encoding
    # A small file cannot afford the default MLP (64 wide, two layers: ~6.4 k weights, about
    # 6 KB at 8 bits): halve the width until its weights, at 8 bits, take at most half the
    # file. On the same crop at 1 bpp, width 16 (about 40 % of the file) gave 36.2 dB where
    # width 8 (the choice at a quarter) gave 32.0 dB.
    WEIGHT_SHARE: ClassVar[float] = 0.5

    @classmethod
    def config_for_rate(cls, cfg: ShaciraConfig, bits: float) -> ShaciraConfig:
        hidden = cfg.hidden
        while hidden > 8 and 8 * _mlp_weights(cfg, hidden) > cls.WEIGHT_SHARE * bits:
            hidden //= 2
        return dataclasses.replace(cfg, hidden=hidden)

    def make_task(self, signal, device, opts):
        from inr.pipeline import rate_target

        return self.rate_task(signal, device, rate_target(opts, signal, None, None), batch_size=opts.batch_size)

    def rate_task(self, signal, device, target, overhead_bits: float = 0.0, batch_size: int | None = None):
        from inr.export.shacira_codec import ShaciraTask

        return ShaciraTask(signal, device, target, overhead_bits, batch_size)

    def start_at_rate(self, bpp: float, pixels: int) -> float:
        """No analysis start: the latents are learned from a flat picture."""
        return float("nan")

    @torch.no_grad()
    def round_latents(self) -> None:
        self.latents.copy_(torch.round(self.latents))

    def side_codec(self):
        from inr.export.shacira_codec import HashLatentSection

        return HashLatentSection()


def _mlp_weights(cfg: ShaciraConfig, hidden: int) -> int:
    """Weights and biases of the MLP at width `hidden`."""
    dims = [cfg.n_levels * cfg.n_features] + [hidden] * cfg.layers + [cfg.out_dim]
    return sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))


register(
    ModelSpec(
        name="shacira",
        config_cls=ShaciraConfig,
        model_cls=ShaciraMLP,
        signals=("image", "video"),
        description="SHACIRA: hash grid of quantized, entropy-coded latents + small ReLU MLP, trained for rate and distortion",
        # The latents move in integer steps of a feature / 32, at 3x the network's rate: at 10x
        # (the grid's) they outran lambda control (the rate rose to 3-7 bpp early, then lambda
        # overshot and a 1 bpp target ended at 0.5 bpp); at 1x they could not follow it up.
        # The rate model follows the latents' spread at 10x.
        optim=OptimDefaults(
            lr=1e-2, eps=1e-15, betas=(0.9, 0.99), lr_scales=(("encoding.", 3.0), ("rate_model", 10.0)), fast=FAST["shacira"], paper=PAPER["shacira"]
        ),
        adapt=adapt_hash_grid,
        width_field="table_size",
    )
)
