"""Export: quantization numerics, entropy coding, exact round trips, size effects, rate control."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from inr.bitstream import BitstreamError
from inr.errors import InrError
from inr.export.codec import decode_model, info
from inr.export.compress import ExportOptions, decode_bytes, encode_signal, encode_to_bpp
from inr.export.entropy import Reader, decode_mask, decode_symbols, encode_mask, encode_symbols
from inr.export.prune import global_magnitude_masks
from inr.export.quant import dequantize, fake_quant, quantize
from inr.fit import FitConfig
from inr.metrics import psnr
from inr.pipeline import FitOptions
from inr.signals import video_signal

CPU = torch.device("cpu")


# ------------------------------------------------------------------ numerics
def test_quantize_matches_float64_reference():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 5, 3, 3, generator=gen)
    for bits in (2, 4, 8, 12, 16):
        qt = quantize(w, bits)
        rows = w.double().reshape(6, -1)
        off, sc = qt.offset.double(), qt.scale.double()
        ref_q = torch.round((rows - off[:, None]) / sc[:, None]).clamp(0, 2**bits - 1)
        diff = (qt.q.reshape(6, -1).double() - ref_q).abs()
        # The codec computes in float32; at ties float64 may round the other way.
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01
        err = (dequantize(qt.q, qt.offset, qt.scale).double() - w.double()).abs().reshape(6, -1)
        # half a step, plus the float16 rounding of offset/scale accumulated over the range
        assert (err.max(1).values <= sc * 0.5 + sc * 2**bits * 1e-3 + 1e-3).all()


def test_fake_quant_is_exact_without_grad_and_straight_through_with():
    w = torch.randn(4, 16, requires_grad=True)
    exact = dequantize(*(lambda q: (q.q, q.offset, q.scale))(quantize(w, 6)))
    with torch.no_grad():
        assert torch.equal(fake_quant(w, 6), exact)
    fake_quant(w, 6).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # identity gradient


def test_entropy_coding_round_trip_and_near_entropy():
    rng = np.random.default_rng(1)
    for alphabet, symbols in [
        (256, np.clip(np.round(rng.normal(120, 15, 20000)), 0, 255)),
        (64, np.clip(np.round(rng.laplace(30, 2, 500)), 0, 63)),
        (16, np.full(50, 3)),
        (65536, rng.integers(0, 65536, 300)),
    ]:
        symbols = symbols.astype(np.int32)
        block, _ = encode_symbols(symbols, alphabet)
        r = Reader(block)
        assert np.array_equal(decode_symbols(r, symbols.size, alphabet), symbols) and r.remaining == 0
        p = np.bincount(symbols) / symbols.size
        entropy_bytes = -(p[p > 0] * np.log2(p[p > 0])).sum() * symbols.size / 8
        if symbols.size >= 10000:
            assert len(block) < 1.03 * entropy_bytes + 64
    mask = (rng.random(5000) > 0.4).astype(np.int32)
    block = encode_mask(mask)
    assert np.array_equal(decode_mask(Reader(block), 5000), mask)
    assert len(block) < 5000 / 8 * 0.99  # better than a raw bitmap


def test_global_pruning_ratio():
    gen = torch.Generator().manual_seed(0)
    named = {"a.weight": torch.randn(10, 20, generator=gen), "b.weight": torch.randn(30, 5, generator=gen), "b.bias": torch.randn(30)}
    masks = global_magnitude_masks(named, 0.4)
    assert set(masks) == {"a.weight", "b.weight"}  # biases are not pruned
    kept = sum(float(m.sum()) for m in masks.values())
    assert abs(kept / 350 - 0.6) < 0.01


# ------------------------------------------------------------------ files
def _encode(tiny_clip, model="nerv", frames=4, epochs=40, **exp):
    sig = video_signal(tiny_clip[:frames])
    opts = FitOptions(model=model, params=30_000, batch_size=2, fit=FitConfig(epochs=epochs, lr=5e-3))
    return sig, encode_signal(sig, opts, ExportOptions(**exp), CPU)


@pytest.fixture(scope="module")
def hnerv_encoded(tiny_clip):
    return _encode(tiny_clip, model="hnerv", epochs=30)


def test_decode_equals_quantized_model_output(hnerv_encoded):
    sig, enc = hnerv_encoded
    at_encode = enc.model.render(list(sig.data.shape), CPU)
    decoded, header, _ = decode_bytes(enc.data, CPU)
    assert torch.equal(decoded, at_encode)
    again, _, _ = decode_bytes(enc.data, CPU)
    assert torch.equal(decoded, again)  # deterministic
    emb = next(t for t in header["tensors"] if t["name"] == "embeddings")  # an ordinary coded tensor
    assert emb["bits"] == 6 and emb["shape"][0] == 4
    assert {t["bits"] for t in header["tensors"] if t["name"] != "embeddings"} == {8}


def test_hnerv_encode_embeds_once_unless_pruning_retrains(tiny_clip, monkeypatch):
    """The fit's evaluation embeds the frames; the export codes those embeddings instead of
    embedding again (seconds a GOP at 1080p), except after pruning has fine-tuned the encoder.
    Either way the file decodes to what the encoder's model renders."""
    from inr.models.nerv import HNeRV

    calls = []
    real = HNeRV.prepare_decoding
    monkeypatch.setattr(HNeRV, "prepare_decoding", lambda self, *a, **k: (calls.append(1), real(self, *a, **k))[1])
    for prune, embeds in ((0.0, 1), (0.3, 2)):
        calls.clear()
        sig, enc = _encode(tiny_clip, model="hnerv", epochs=4, prune=prune)
        assert len(calls) == embeds, prune
        assert "msssim" not in enc.float_metrics  # scored by PSNR alone: the report measures the file
        decoded, _, _ = decode_bytes(enc.data, CPU)
        assert torch.equal(decoded, enc.model.render(list(sig.data.shape), CPU))


def test_info_accounts_for_every_byte(hnerv_encoded):
    _, enc = hnerv_encoded
    rep = info(enc.data)
    assert rep["accounted"] == rep["bytes"] == len(enc.data)
    wgts = rep["breakdown"]["section:WGTS"] - 12  # minus tag, length, CRC
    assert wgts == sum(t["bytes"] for t in rep["header"]["tensors"])


def test_pruning_and_fewer_bits_shrink_the_file(tiny_clip):
    sig, base = _encode(tiny_clip, bits=8)
    _, pruned = _encode(tiny_clip, bits=8, prune=0.4)
    _, fewer = _encode(tiny_clip, bits=4)
    q_base = psnr(decode_bytes(base.data, CPU)[0], sig.data)
    q_pruned = psnr(decode_bytes(pruned.data, CPU)[0], sig.data)
    q_fewer = psnr(decode_bytes(fewer.data, CPU)[0], sig.data)
    assert len(pruned.data) < 0.85 * len(base.data)
    assert len(fewer.data) < 0.75 * len(base.data)
    assert q_pruned > q_base - 1.5, (q_base, q_pruned)
    assert q_fewer > q_base - 3.0, (q_base, q_fewer)
    assert abs(q_base - base.float_metrics["psnr"]) < 0.5  # 8-bit QAT costs almost nothing


def test_bpp_rate_control_within_10_percent(tiny_clip):
    sig = video_signal(tiny_clip[:4])
    opts = FitOptions(model="nerv", batch_size=2, fit=FitConfig(epochs=10, lr=5e-3))
    target = 6.0  # bits per pixel on a 4 x 64 x 96 clip -> 18432 bytes (NeRV needs >= ~16k params here)
    enc, report = encode_to_bpp(sig, opts, ExportOptions(), target, CPU)
    bpp = len(enc.data) * 8 / (4 * 64 * 96)
    assert abs(bpp - target) <= 0.1 * target, report
    assert report["within_tolerance"]


def test_decoder_rejects_oversized_claims(hnerv_encoded):
    """A header that claims a huge model is refused before anything is allocated."""
    from inr import bitstream

    _, enc = hnerv_encoded
    box = bitstream.read(enc.data)
    box.header["config"]["fc_dim"] = 10**6
    forged = bitstream.write(box.header, box.sections)
    with pytest.raises(BitstreamError, match="parameters|tensor list"):
        decode_model(forged)
    box.header["signal"]["shape"] = [10**6, 4096, 4096, 3]
    with pytest.raises(BitstreamError, match="limits|frames"):
        decode_model(bitstream.write(box.header, box.sections))


def test_bpp_rate_control_never_refits_past_the_time_budget(tiny_clip):
    """--seconds is the whole encode: a first attempt that spent the budget and missed its
    rate (here a first guess of 2 bits a parameter sizes the model 4x too large) is final and
    reported out of tolerance, not refitted for another full budget."""
    sig = video_signal(tiny_clip[:4])
    opts = FitOptions(model="nerv", batch_size=2, fit=FitConfig(seconds=1.0, lr=5e-3))
    enc, report = encode_to_bpp(sig, opts, ExportOptions(), 6.0, CPU, bits_per_param=2.0)
    assert len(report["attempts"]) == 1 and not report["within_tolerance"]
    assert report["attempts"][0]["bytes"] == len(enc.data)


def test_bpp_rate_control_starts_from_a_size_the_family_can_build(tiny_clip):
    """A first guess the sizing misses by more than its 5 % (NeRV steps from 13.9k to 15.6k
    parameters here) but within the rate's 10 % starts from the buildable size rather than
    failing the encode: HNeRV at 1080p in 6-frame groups, 0.02 bpp, failed this way."""
    from inr.models import get_spec, size_to_budget
    from inr.models.sizing import closest_size
    from inr.pipeline import base_config

    sig = video_signal(tiny_clip[:4])
    spec = get_spec("nerv")
    cfg = base_config(spec, sig, None)
    asked = int(4.72 * sig.num_samples / 8)  # the first guess: 8 bits a parameter
    near, _ = closest_size(spec, cfg, asked)
    assert 0.05 < abs(near - asked) / asked <= 0.10, (asked, near)
    with pytest.raises(InrError, match="closest size"):
        size_to_budget(spec, cfg, asked)
    opts = FitOptions(model="nerv", batch_size=2, fit=FitConfig(epochs=2, lr=5e-3))
    enc, report = encode_to_bpp(sig, opts, ExportOptions(), 4.72, CPU, attempts=1)
    assert report["attempts"][0]["params"] == near
    assert decode_bytes(enc.data, CPU)[0].shape == sig.data.shape
