"""The SHACIRA codec: its rate-distortion task and section HLAT, the hash-grid latents.

Training, rate control and the choice of the weights' bit depth are the grid family's
(`grid_codec.RateTask`, `encode_rate_aware`): only the batches (random coordinates, as the
`hashgrid` family trains) and the latents' coding differ.

HLAT (docs/bitstream.md, "Hash-grid latents"): one ANS stream; levels in the hash grid's
order (0 = the coarsest, N_min), each level's (entries, n_features) integers in row-major
order, each coded under constriction's QuantizedLaplace(min_l, max_l) with the (mean,
scale) of its level and channel.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from inr.bitstream import BitstreamError
from inr.export.entropy import ans_decoder, ans_finish
from inr.export.grid_codec import (
    RateTarget,
    RateTask,
    ans_decode,
    ans_encode,
    check_range,
    coder_params,
    integer_range,
)
from inr.models.shacira import ShaciraMLP
from inr.tasks import CoordTask

TAG = "HLAT"
# Where lambda starts for a bpp target (then steered). Measured once, on a 128x128 crop of
# the bundled Bunny frame at 300 steps: a fixed lambda of 1e-3 gave 0.85 bpp, 1e-2 gave 0.5
# and 1e-1 0.43 (the weights' floor); the grid's start (3e-3 x (0.45 / bpp)^4, 1e-4 at
# 1 bpp) let the latents' rate run to 7 bpp before lambda caught up. Inversely proportional
# to the target as a first guess (dD/dR grows as the rate falls).
LAMBDA_AT_1BPP = 1e-3


class ShaciraTask(RateTask, CoordTask):
    """FitTask for `ShaciraMLP`: random coordinate batches, loss = MSE + lambda x latent bpp.
    The rate is that of every latent at every step: all of them are coded, and a coordinate
    batch reads a scattered subset of every level."""

    def __init__(self, signal, device: torch.device, target: RateTarget, overhead_bits: float = 0.0, batch_size: int | None = None):
        # On a CPU many small batches beat few full ones (CoordinateRepresentation.make_task).
        cap = 1 << 18 if device.type == "cuda" else 1 << 14
        CoordTask.__init__(self, signal, device, batch_size=batch_size or (None if signal.num_samples <= cap else cap), loss="l2")
        RateTask.__init__(self, target, signal.num_samples, overhead_bits)
        if target.lam is None and target.bpp is not None:
            self.lam = LAMBDA_AT_1BPP / target.bpp

    @property
    def reference(self) -> torch.Tensor:
        """The signal as `reconstruct` returns it: (*spatial, C)."""
        return self.signal.data.to(self.device)

    def batch_loss(self, model: ShaciraMLP, generator: torch.Generator, step: int):
        model.quant_mode = self.quant_mode()
        inputs, values = self.batch(generator)
        q = model.quantized_latents()
        pred = model.render_points(inputs, q).float()
        mse = F.mse_loss(pred, values)
        bpp = model.rate_bits(q) / self.pixels
        self.steer_at(step, lambda: self.latent_bits(model))
        return mse + self.lam * bpp, mse

    @torch.no_grad()
    def latent_bits(self, model: ShaciraMLP) -> float:
        return float(model.rate_bits(torch.round(model.latents)))

    def evaluate(self, model: ShaciraMLP, reconstruction: bool = True, full: bool = True, bits: float | None = None) -> dict:
        """As GridTask.evaluate (`bits`: the latents' bits when the caller has just measured them)."""
        out = CoordTask.evaluate(self, model, full)  # in eval mode: the rounded latents, as decoded
        bits = self.latent_bits(model) if bits is None else bits
        out["latent_bpp_estimate"], out["lambda"] = bits / self.pixels, self.lam
        if not reconstruction:
            out.pop("reconstruction")
        return out


def _level_params(model: ShaciraMLP, level: int, entries: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-symbol (mean, scale) of a level's (entries, F) latents in row-major order."""
    params = model.rate_model.detach().cpu()[level]  # (F, 2)
    return coder_params(params[:, 0].expand(entries, -1), params[:, 1].expand(entries, -1))


def encode_hash_latents(model: ShaciraMLP) -> tuple[bytes, list[dict]]:
    """The HLAT payload and one header record per level: shape and integer range."""
    q = torch.round(model.latents.detach()).cpu()
    records, chunks = [], []
    for l, s in enumerate(model.level_slices()):
        z = q[s]
        lo, hi = integer_range(z, f"hash latent level {l}")
        records.append({"level": l, "shape": list(z.shape), "min": lo, "max": hi})
        chunks.append((z.numpy().astype(np.int32).ravel(), lo, hi, *_level_params(model, l, z.shape[0])))
    return ans_encode(chunks), records


def decode_hash_latents(model: ShaciraMLP, payload: bytes, records) -> None:
    """Fill the model's latents from an HLAT payload; BitstreamError on anything odd."""
    slices = model.level_slices()
    if not isinstance(records, list) or len(records) != len(slices):
        raise BitstreamError("hash latent records do not match the model", part="header")
    feats = model.config.n_features
    ranges = []
    for s, rec in zip(slices, records):
        if not isinstance(rec, dict) or rec.get("shape") != [s.stop - s.start, feats]:
            raise BitstreamError("hash latent shape does not match the model", part="header")
        ranges.append(check_range(rec, "hash latent"))
    coder = ans_decoder(payload, TAG)
    with torch.no_grad():
        for l, (s, (lo, hi)) in enumerate(zip(slices, ranges)):
            entries = s.stop - s.start
            vals = ans_decode(coder, lo, hi, *_level_params(model, l, entries), TAG)
            model.latents[s] = torch.from_numpy(vals).reshape(entries, feats)
    ans_finish(coder, TAG)


class HashLatentSection:
    """How a `ShaciraMLP` file carries its latents: header key `hash_latents` + section HLAT.
    The decoder, rate model and MLP travel in section NETW (`netcode.py`; QPRM/WGTS in older
    files)."""

    header_key = "hash_latents"

    def encode(self, model: ShaciraMLP) -> tuple[list, dict[str, bytes]]:
        payload, records = encode_hash_latents(model)
        return records, {TAG: payload}

    def decode(self, model: ShaciraMLP, records, sections: dict[str, bytes]) -> None:
        if TAG not in sections:
            raise BitstreamError(f"missing section {TAG}", part="payload")
        decode_hash_latents(model, sections[TAG], records)
