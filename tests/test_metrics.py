"""Metrics against independent references."""
from __future__ import annotations

import math

import torch
from pytorch_msssim import ms_ssim as lib_ms_ssim

from inr.metrics import ms_ssim_frames, ms_ssim_nchw, msssim_scales, per_frame_psnr, psnr


def test_psnr_known_value():
    a = torch.zeros(4, 4, 3, dtype=torch.float64)
    b = torch.full((4, 4, 3), 0.1, dtype=torch.float64)
    assert math.isclose(psnr(a, b), 20.0, rel_tol=1e-9)
    assert per_frame_psnr(a[None], b[None]) == [psnr(a, b)]


def test_msssim_equals_library_at_five_scales():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 176, 192, generator=gen)
    y = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    assert msssim_scales(176, 192) == 5
    ours = ms_ssim_nchw(x, y)
    ref = lib_ms_ssim(x, y, data_range=1.0, size_average=False)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_msssim_small_frames_is_bounded_and_ordered(tiny_clip):
    clean = tiny_clip.float() / 255
    noisy = (clean + 0.05 * torch.randn(clean.shape)).clamp(0, 1)
    noisier = (clean + 0.2 * torch.randn(clean.shape)).clamp(0, 1)
    same = ms_ssim_frames(clean, clean)
    assert all(abs(v - 1) < 1e-5 for v in same)
    assert min(ms_ssim_frames(clean, noisy)) > max(ms_ssim_frames(clean, noisier))


def test_metrics_scored_in_chunks_equal_the_whole_clip_in_float64(monkeypatch):
    """Metrics hold a bounded number of elements in flight (a 1080p group of frames scored
    at once peaked at 5,371 MiB): scoring in chunks must give the whole-clip figures."""
    import numpy as np

    import inr.metrics as metrics

    gen = torch.Generator().manual_seed(1)
    a = torch.rand(5, 48, 40, 3, generator=gen)
    b = (a + 0.03 * torch.randn(a.shape, generator=gen)).clamp(0, 1)
    whole_ms = ms_ssim_frames(a, b)
    monkeypatch.setattr(metrics, "CHUNK_ELEMENTS", 1000)  # under one frame: a frame and a slice of it at a time
    diff = a.numpy().astype(np.float64) - b.numpy().astype(np.float64)
    assert math.isclose(psnr(a, b), 10 * math.log10(1 / np.mean(diff**2)), rel_tol=1e-12)
    expected = [10 * math.log10(1 / np.mean(d**2)) for d in diff]
    assert all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(per_frame_psnr(a, b), expected))
    assert len(metrics.frame_chunks(5, a[0].numel())) == 5
    np.testing.assert_allclose(ms_ssim_frames(a, b), whole_ms, rtol=1e-5)
