"""Every family round-trips through a `.inr` file: decoding gives exactly the frames the
quantized model rendered at encode time, on any run (issue 9, "a file does not depend on the
machine that wrote it")."""
from __future__ import annotations

import pytest
import torch

from inr.export.compress import ExportOptions, decode_bytes, encode_signal
from inr.fit import FitConfig
from inr.pipeline import FitOptions
from inr.signals import image_signal, video_signal

CPU = torch.device("cpu")
FAMILIES = {
    "siren": {"hidden": 16, "layers": 1},
    "poly": {"hidden": 16, "layers": 2},
    "ffn": {"hidden": 16, "layers": 1, "num_features": 8},
    "hashgrid": {"table_size": 2**8, "n_levels": 4, "hidden": 16, "layers": 1},
    "nerv": {"fc_dim": 8},
    "nervpp": {"fc_dim": 8},
    "hnerv": {"fc_dim": 8, "enc_dim": 8},
    "shacira": {"table_size": 2**8, "n_levels": 4, "hidden": 16, "layers": 1},
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_decodes_bit_exactly(name, tiny_clip, crop64):
    video = name in ("nerv", "nervpp", "hnerv")
    sig = video_signal(tiny_clip[:2, :32, :48]) if video else image_signal(crop64[:24, :24])
    opts = FitOptions(model=name, overrides=FAMILIES[name], batch_size=2 if video else None, fit=FitConfig(steps=10))
    enc = encode_signal(sig, opts, ExportOptions(bits=8), CPU)
    at_encode = enc.model.render(list(sig.data.shape), CPU)
    decoded, header, _ = decode_bytes(enc.data, CPU)
    assert header["model"] == name and decoded.shape == sig.data.shape
    assert torch.equal(decoded, at_encode)
    assert torch.equal(decode_bytes(enc.data, CPU)[0], decoded)
