"""The hash grid's backend is a runtime choice: a model trained through tiny-cuda-nn writes the
same state and the same `.inr` bytes as the torch backend, and decodes on a CPU bit-exactly.

No GPU here, so a stand-in `tinycudann` module with the real wrapper's contract (a flat
`params` parameter read in `forward`, inputs in [0, 1], `n_output_dims`) takes its place.
"""
from __future__ import annotations

import dataclasses
import sys
import types

import pytest
import torch
from torch import nn

from inr import checkpoint as ckpt
from inr.encodings.hashgrid import HashGridConfig, HashGridEncoding, TorchHashGrid
from inr.export.codec import decode_model, encode_model
from inr.models import get_spec
from inr.models.registry import config_from_dict, config_to_dict
from inr.signals import image_signal


@dataclasses.dataclass
class _ScaleConfig(HashGridConfig):
    """A grid config that takes tcnn's `per_level_scale` as given, as tcnn does."""

    scale: float = 2.0

    @property
    def per_level_scale(self) -> float:
        return self.scale


class FakeTcnnEncoding(nn.Module):
    calls = 0

    def __init__(self, n_input_dims: int, encoding_config: dict, seed: int = 1337, dtype=None):
        super().__init__()
        c = encoding_config
        assert c["otype"] == "HashGrid" and dtype == torch.float32
        cfg = _ScaleConfig(
            in_dim=n_input_dims, n_levels=c["n_levels"], n_features=c["n_features_per_level"],
            table_size=1 << c["log2_hashmap_size"], base_resolution=c["base_resolution"], scale=c["per_level_scale"],
        )
        self.core = TorchHashGrid(cfg)
        self.n_output_dims = cfg.out_dim
        self.params = nn.Parameter(torch.zeros(cfg.num_params))  # tcnn's own flat table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        FakeTcnnEncoding.calls += 1
        assert x.min() >= 0 and x.max() <= 1
        flat = self.params.to(torch.float32).contiguous()
        return self.core.lookup(x, flat.view(-1, self.core.cfg.n_features))


@pytest.fixture
def fake_tcnn(monkeypatch):
    monkeypatch.setitem(sys.modules, "tinycudann", types.SimpleNamespace(Encoding=FakeTcnnEncoding))
    FakeTcnnEncoding.calls = 0
    return FakeTcnnEncoding


SMALL = {"table_size": 2**9, "n_levels": 4, "hidden": 16, "layers": 1}


def _hash_model(signal, backend: str):
    spec = get_spec("hashgrid")
    cfg = dataclasses.replace(spec.adapt(spec.config_cls(), signal), **SMALL)
    torch.manual_seed(0)
    return spec, cfg, spec.model_cls(cfg, backend=backend)


def test_tcnn_trained_model_decodes_on_torch_bit_exactly(fake_tcnn, crop64, tmp_path):
    signal = image_signal(crop64[:32, :32])
    spec, cfg, model = _hash_model(signal, "tcnn")
    coords = torch.rand(256, 2) * 2 - 1
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = model.encoding.impl.params.detach().clone()
    for _ in range(3):  # gradients must reach the one shared table through tcnn's flat view
        loss = model(coords).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fake_tcnn.calls == 3 and not torch.equal(before, model.encoding.impl.params)

    # One parameter layout: the same names and shapes as the torch backend.
    _, _, torch_model = _hash_model(signal, "torch")
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in torch_model.state_dict().items()}
    assert "backend" not in config_to_dict(cfg)

    # Checkpoint written after a tcnn fit loads on torch bit-exactly, with equal outputs.
    ckpt.save(tmp_path / "ck", spec, cfg, model, {"signal": "image"})
    _, _, loaded, _ = ckpt.load(tmp_path / "ck")
    assert loaded.encoding.backend == "auto" and loaded.encoding.active_backend(torch.device("cpu")) == "torch"
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    with torch.no_grad():
        assert torch.equal(model(coords), loaded(coords))

    # The .inr bytes do not depend on the backend that produced the weights.
    meta = {"kind": "image", "shape": list(signal.data.shape)}
    data = encode_model(spec, cfg, model.stored_tensors(), meta, bits=8)
    assert data == encode_model(spec, cfg, loaded.stored_tensors(), meta, bits=8)
    _, _, decoded, header = decode_model(data)
    assert "backend" not in header["config"]
    assert decoded.encoding.active_backend(torch.device("cpu")) == "torch"
    redecoded_on_tcnn = _hash_model(signal, "tcnn")[2]
    redecoded_on_tcnn.load_state_dict(decoded.state_dict())
    with torch.no_grad():
        assert torch.equal(decoded(coords), redecoded_on_tcnn(coords))


def test_old_configs_and_checkpoints_with_a_backend_still_load():
    spec = get_spec("hashgrid")
    data = config_to_dict(spec.config_cls())
    data["backend"] = "tcnn"  # written by the format before the backend became a runtime choice
    cfg = config_from_dict(spec, data)
    model = spec.model_cls(cfg, backend="torch")
    state = model.state_dict()
    table = state.pop("encoding.impl.params")
    state["encoding.impl.enc.params"] = table.reshape(-1)  # the old tcnn wrapper's key and layout
    fresh = spec.model_cls(cfg, backend="torch")
    fresh.load_state_dict(state)
    assert torch.equal(fresh.encoding.impl.params, table)


def test_backend_choice(fake_tcnn, monkeypatch):
    cfg = HashGridConfig(table_size=2**8, n_levels=2, base_resolution=2, max_resolution=8)
    with pytest.raises(ValueError, match="unknown hash grid backend"):
        HashGridEncoding(cfg, backend="cuda")
    with pytest.raises(ValueError, match="power-of-two"):
        HashGridEncoding(dataclasses.replace(cfg, table_size=300), backend="tcnn")
    enc = HashGridEncoding(cfg, backend="auto")
    assert enc.active_backend(torch.device("cpu")) == "torch"
    monkeypatch.setenv("INR_HASHGRID_BACKEND", "torch")
    spec = get_spec("hashgrid")
    assert spec.model_cls(spec.config_cls(**SMALL)).encoding.backend == "torch"
