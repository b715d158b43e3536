"""Encodings: shapes, and the torch hash grid against a float64 reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inr.encodings import GaussianFourierFeatures, HashGridConfig, HashGridEncoding, PositionalEncoding
from inr.encodings.hashgrid import PRIMES


def reference_hashgrid(cfg: HashGridConfig, table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Straightforward per-point, per-corner loops in float64, written from the definition."""
    out = np.zeros((x.shape[0], cfg.n_levels * cfg.n_features))
    offset = 0
    for level in range(cfg.n_levels):
        scale = 2.0 ** (level * math.log2(cfg.per_level_scale)) * cfg.base_resolution - 1.0
        res = math.ceil(scale) + 1
        size = min(-(-(res**cfg.in_dim) // 8) * 8, cfg.table_size)
        hashed = res**cfg.in_dim > size
        for n, point in enumerate(x):
            pos = np.clip((point + 1) / 2, 0, 1) * scale + 0.5
            base = np.floor(pos)
            frac = pos - base
            acc = np.zeros(cfg.n_features)
            for corner in range(2**cfg.in_dim):
                bits = [(corner >> d) & 1 for d in range(cfg.in_dim)]
                c = [int(base[d]) + bits[d] for d in range(cfg.in_dim)]
                if hashed:
                    h = 0
                    for d in range(cfg.in_dim):
                        h ^= (c[d] * PRIMES[d]) & 0xFFFFFFFF
                    idx = h % size
                else:
                    idx = sum(c[d] * res**d for d in range(cfg.in_dim)) % size
                w = np.prod([frac[d] if bits[d] else 1 - frac[d] for d in range(cfg.in_dim)])
                acc += w * table[offset + idx]
            out[n, level * cfg.n_features : (level + 1) * cfg.n_features] = acc
        offset += size
    return out


@pytest.mark.parametrize("in_dim", [2, 3])
def test_torch_hashgrid_matches_float64_reference(in_dim):
    cfg = HashGridConfig(in_dim=in_dim, n_levels=6, n_features=2, table_size=2**9, base_resolution=3, max_resolution=70)
    assert any(cfg.level_is_hashed(l) for l in range(6)) and not all(cfg.level_is_hashed(l) for l in range(6))
    enc = HashGridEncoding(cfg, backend="torch").double()
    with torch.no_grad():  # larger values than the 1e-4 init make interpolation errors visible
        enc.impl.params.uniform_(-1, 1)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, in_dim, generator=gen, dtype=torch.float64) * 2 - 1
    x[0] = -1.0  # domain corners
    x[1] = 1.0
    got = enc(x).detach().numpy()
    want = reference_hashgrid(cfg, enc.impl.params.detach().numpy(), x.numpy())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_hashgrid_config_and_init():
    cfg = HashGridConfig(in_dim=2, n_levels=16, n_features=2, table_size=2**14, base_resolution=16, max_resolution=512)
    enc = HashGridEncoding(cfg, backend="torch")
    assert enc.out_dim == 32
    assert sum(p.numel() for p in enc.parameters()) == cfg.num_params
    assert math.isclose(cfg.per_level_scale ** 15 * 16, 512, rel_tol=1e-9)
    p = enc.impl.params
    assert p.abs().max() <= 1e-4 and p.std() > 1e-5  # U(-1e-4, 1e-4)
    assert not cfg.level_is_hashed(0) and cfg.level_is_hashed(15)


def test_hashgrid_gradients_reach_table():
    cfg = HashGridConfig(in_dim=2, n_levels=4, table_size=2**8, base_resolution=2, max_resolution=32)
    enc = HashGridEncoding(cfg, backend="torch")
    enc(torch.rand(100, 2) * 2 - 1).sum().backward()
    assert enc.impl.params.grad.abs().sum() > 0


def test_auto_backend_is_torch_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA machine")
    assert HashGridEncoding(HashGridConfig(), backend="auto").backend == "torch"


def test_positional_encoding_values():
    pe = PositionalEncoding(1, levels=80, base=1.25)
    assert pe.out_dim == 160
    t = torch.tensor([[0.3]])
    out = pe(t)
    k = 7
    assert math.isclose(float(out[0, k]), math.sin(1.25**k * math.pi * 0.3), rel_tol=1e-5, abs_tol=1e-6)
    assert math.isclose(float(out[0, 80 + k]), math.cos(1.25**k * math.pi * 0.3), rel_tol=1e-5, abs_tol=1e-6)


def test_gaussian_fourier_features_deterministic():
    a = GaussianFourierFeatures(2, 16, sigma=10.0, seed=3)
    b = GaussianFourierFeatures(2, 16, sigma=10.0, seed=3)
    x = torch.rand(5, 2)
    assert a.out_dim == 32
    assert torch.equal(a(x), b(x))
    assert 5 < float(a.B.std()) < 15
