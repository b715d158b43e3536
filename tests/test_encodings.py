"""Encodings: shapes, and the torch hash grid against a float64 reference."""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch

from inr.encodings import GaussianFourierFeatures, HashGridConfig, HashGridEncoding, PositionalEncoding
from inr.encodings.fourier import float32_bands
from inr.encodings.prng import gaussian_matrix, splitmix64, standard_normals
from inr.models import config_from_dict, get_spec
from inr.signals import video_signal

# gaussian_matrix(seed=0, rows=2, cols=3, sigma=10): fixed by the format (docs/bitstream.md).
FIXED_B = [[0.4646347165107727, 13.82945728302002, 1.3714879751205444], [-16.919090270996094, 6.007101058959961, 2.43454909324646]]
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


@pytest.mark.parametrize("in_dim", [1, 2, 3])
def test_hashgrid_plan_rows_are_the_lookup_of_those_points(in_dim):
    """A batch cut from the plan of a whole point set reads and weighs the table exactly as a
    lookup of those points, forward and backward (non-power-of-two table: the modulo path)."""
    cfg = HashGridConfig(in_dim=in_dim, n_levels=5, n_features=3, table_size=1000, base_resolution=3, max_resolution=90)
    enc = HashGridEncoding(cfg, backend="torch")
    with torch.no_grad():
        enc.impl.params.uniform_(-1, 1)
    x = torch.rand(500, in_dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x[0], x[1] = -1.0, 1.0
    plan = enc.plan(x)
    assert plan.index.shape == plan.weight.shape == (500, 2**in_dim, 5, 3) and plan.index.dtype == torch.int32
    rows = torch.tensor([1, 0, 499, 7, 7, 250])
    grads = []
    for inputs in (plan[rows], x[rows]):
        out = enc(inputs)
        grads.append(torch.autograd.grad(out, enc.impl.params, torch.ones_like(out))[0])
        if len(grads) == 1:
            first = out.detach()
    assert torch.equal(first, out.detach()) and torch.equal(grads[0], grads[1])
    want = reference_hashgrid(cfg, enc.impl.params.detach().double().numpy(), x[rows].double().numpy())
    np.testing.assert_allclose(first.double().numpy(), want, rtol=0, atol=1e-5)


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
    assert HashGridEncoding(HashGridConfig(), backend="auto").active_backend(torch.device("cpu")) == "torch"


def test_positional_encoding_values():
    pe = PositionalEncoding(1, levels=80, base=1.25)
    assert pe.out_dim == 160
    out = pe(torch.tensor([[0.3]], dtype=torch.float64))
    assert out.dtype == torch.float32
    k = 7
    assert math.isclose(float(out[0, k]), math.sin(1.25**k * math.pi * 0.3), rel_tol=1e-5, abs_tol=1e-6)
    assert math.isclose(float(out[0, 80 + k]), math.cos(1.25**k * math.pi * 0.3), rel_tol=1e-5, abs_tol=1e-6)


def _reference_pe(x: float, level: int, base: float = 1.25) -> tuple[float, float]:
    """sin/cos(base^k pi x) at 50 significant digits (x is taken as the exact float64 given)."""
    with mpmath.workdps(50):
        ang = mpmath.mpf(base) ** level * mpmath.pi * mpmath.mpf(x)
        return float(mpmath.sin(ang)), float(mpmath.cos(ang))


@pytest.mark.parametrize("frames", [32, 132])
def test_nerv_positional_encoding_matches_high_precision_reference_at_top_level(frames):
    """NeRV feeds idx / T through 80 bands of base 1.25: band 79 is 1.4e8 rad per unit, where a
    float32 angle is noise. Every band must match a 50-digit reference to float32 accuracy."""
    pe = PositionalEncoding(1, levels=80, base=1.25)
    idx = torch.arange(frames)
    t = idx.to(torch.float64)[:, None] / frames
    out = pe(t)
    worst = 0.0
    for i in range(frames):
        for k in (0, 40, 70, 79):
            s, c = _reference_pe(float(t[i, 0]), k)
            worst = max(worst, abs(float(out[i, k]) - s), abs(float(out[i, 80 + k]) - c))
    assert worst < 1e-6
    # The float32 computation this replaces is off by O(1) at the top band (the bug it fixes).
    ang32 = (idx.float()[:, None] / frames) * torch.tensor(1.25**79 * math.pi, dtype=torch.float32)
    ref = torch.tensor([_reference_pe(float(t[i, 0]), 79)[0] for i in range(frames)])
    assert (torch.sin(ang32[:, 0]) - ref).abs().max() > 0.1


def test_nerv_model_feeds_exact_encoding_to_its_decoder():
    spec = get_spec("nerv")
    sig = video_signal(torch.zeros(10, 32, 48, 3))
    cfg = dataclasses.replace(spec.adapt(spec.config_cls(), sig), fc_dim=8)
    model = spec.model_cls(cfg)
    seen = {}
    model.decoder.register_forward_pre_hook(lambda mod, args: seen.update(z=args[0]))
    model(torch.tensor([3, 7]))
    z = seen["z"][:, :, 0, 0]
    assert cfg.pe_bands == "float32"  # every new fit: the official code's frequencies
    older = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "pe_bands"}
    assert config_from_dict(spec, older).pe_bands == "exact"  # a file written before keeps decoding as it did
    band = float32_bands(1.25, 80)[79]
    for row, i in enumerate((3, 7)):
        with mpmath.workdps(50):
            ang = mpmath.mpf(band) * mpmath.pi * mpmath.mpf(i / 10)
            s, c = float(mpmath.sin(ang)), float(mpmath.cos(ang))
        assert abs(float(z[row, 79]) - s) < 1e-6 and abs(float(z[row, 159]) - c) < 1e-6


def test_encodings_survive_module_dtype_casts():
    """`.float()` / `.half()` on a model must not round the frequencies (they are not buffers)."""
    pe = PositionalEncoding(1, levels=80, base=1.25).half().float()
    assert pe.powers[79] == float(Fraction(5, 4) ** 79)
    assert not list(pe.buffers())


def test_splitmix64_matches_reference_vectors():
    """Published SplitMix64 outputs (Vigna's splitmix64.c) for seed 0 and seed 1234567."""
    assert [int(v) for v in splitmix64(0, 3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    assert [int(v) for v in splitmix64(1234567, 2)] == [6457827717110365317, 3203168211198807973]


def test_fourier_feature_matrix_is_format_defined():
    """B is a pure function of (seed, shape, sigma) under the spec in docs/bitstream.md; these
    values are part of the format and must never change."""
    b = gaussian_matrix(0, 2, 3, 10.0)
    assert b.dtype == np.float32 and b.shape == (2, 3)
    # Reference from the definition, in plain Python integers.
    gamma, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1

    def word(c: int) -> int:
        z = (0 + (c + 1) * gamma) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    for j in range(6):
        s = sum(2 * (word(12 * j + k) >> 32) + 1 for k in range(12)) - 12 * (1 << 32)
        assert b.ravel()[j] == np.float32(10.0 * (s / 2**33))
    np.testing.assert_array_equal(b, np.array(FIXED_B, dtype=np.float32))
    feats = GaussianFourierFeatures(2, 3, sigma=10.0, seed=0)
    assert torch.equal(feats.B, torch.from_numpy(b))


def test_fourier_feature_statistics():
    n = standard_normals(7, 20000)
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1) < 0.02 and np.abs(n).max() <= 6


def test_gaussian_fourier_features_deterministic_and_exact():
    a = GaussianFourierFeatures(2, 16, sigma=10.0, seed=3)
    b = GaussianFourierFeatures(2, 16, sigma=10.0, seed=3)
    x = torch.rand(5, 2)
    assert a.out_dim == 32
    assert torch.equal(a(x), b(x))
    assert 5 < float(a.B.std()) < 15
    ref = torch.sin(2 * math.pi * (x.double() @ a.B.double()))
    assert (a(x)[:, :16].double() - ref).abs().max() < 1e-6


def test_float32_bands_are_the_official_codes_frequencies():
    """The official NeRV/HNeRV code multiplies a float32 tensor of b^k by pi: each of our bands
    times pi, rounded to float32, is that product correctly rounded (torch's float32 pow may be
    off by an ulp at a level or two, which is why the bands are computed exactly here)."""
    bands = float32_bands(1.25, 80)
    official = ((1.25 ** torch.arange(80)) * math.pi).tolist()
    same = sum(float(np.float32(b * math.pi)) == o for b, o in zip(bands, official))
    assert same >= 78
    with mpmath.workdps(50):
        for k in (0, 1, 40, 79):  # float32 of the exact b^k, times float32 pi, rounded to float32
            exact = float(np.float32(float(np.float32(float(mpmath.mpf(1.25) ** k))) * float(np.float32(math.pi))))
            assert math.isclose(bands[k] * math.pi, exact, rel_tol=1e-15)


def test_float32_band_encoding_matches_high_precision_reference():
    """The band frequencies differ from b^k, the exactness does not: every value matches a
    50-digit evaluation of sin/cos(f_k x) to float32 accuracy."""
    pe = PositionalEncoding(1, levels=80, base=1.25, bands="float32")
    t = torch.arange(32).to(torch.float64)[:, None] / 32
    out = pe(t)
    bands = float32_bands(1.25, 80)
    with mpmath.workdps(50):
        for i in range(32):
            for k in (0, 70, 79):
                ang = mpmath.mpf(bands[k]) * mpmath.pi * mpmath.mpf(float(t[i, 0]))
                assert abs(float(out[i, k]) - float(mpmath.sin(ang))) < 1e-6
                assert abs(float(out[i, 80 + k]) - float(mpmath.cos(ang))) < 1e-6
