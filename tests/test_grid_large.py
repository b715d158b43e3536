"""Large frames in the latent-grid family: windows for training, bands for rendering, a
streamed analysis start, and a memory estimate the GOP planner can trust (issue 11).

The paths under test switch on pixel counts (1080p); the tests shrink the thresholds so a
small clip takes them, and check each against the whole-frame computation it replaces."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from inr.export import grid_codec
from inr.export.grid_codec import GridTask, RateTarget
from inr.models.grid import _RGB_TO_YCC, GridConfig, LatentGrid, level_shapes, nearest_index, resize_matrix, resize_taps, time_factor
from inr.signals import video_signal

CFG = GridConfig(frames=10, height=37, width=53, levels=4, time_base=2, temporal=1, hidden=8)
UPSAMPLING = pytest.mark.parametrize("upsample", [0, 1], ids=["bilinear", "bicubic"])


def _model(seed: int = 0, upsample: int = 0) -> LatentGrid:
    torch.manual_seed(seed)
    m = LatentGrid(dataclasses.replace(CFG, upsample=upsample))
    with torch.no_grad():
        for z in m.latents:
            z.copy_(torch.randn_like(z) * 3)
        for p in m.synthesis.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for conv in m.refine:
            conv.weight.copy_(torch.randn_like(conv.weight) * 0.1)
    return m


@UPSAMPLING
def test_a_window_reads_the_same_features_as_the_whole_frame(upsample):
    m = _model(upsample=upsample)
    idx = torch.tensor([3, 7])
    latents = m.quantized()
    whole = m.upsampled(idx, latents)
    for window in [(5, 30, 11, 50), (0, 37, 0, 53), (36, 37, 0, 1)]:
        y0, y1, x0, x1 = window
        assert torch.allclose(m.upsampled(idx, latents, window), whole[:, :, y0:y1, x0:x1], atol=1e-5)


@UPSAMPLING
def test_banded_rendering_matches_the_whole_frame(monkeypatch, upsample):
    m = _model(upsample=upsample)
    idx = torch.tensor([0, 9])
    with torch.no_grad():
        whole = m(idx)
        monkeypatch.setattr(LatentGrid, "RENDER_PIXELS", 2 * CFG.width * 5)  # bands of 5 rows
        banded = m(idx)
        monkeypatch.setattr(LatentGrid, "SYNTHESIS_PIXELS", 2 * CFG.width * 2)  # the MLP 2 rows at a time: 2 + 2 + 1 a band
        blocked = m(idx)
    assert torch.allclose(whole, banded, atol=1e-5) and torch.allclose(whole, blocked, atol=1e-5)


def test_the_decoders_meta_probe_runs_the_banded_path(monkeypatch):
    from inr.export.schema import _measure

    monkeypatch.setattr(LatentGrid, "RENDER_PIXELS", CFG.width * 4)
    with torch.device("meta"):
        m = LatentGrid(CFG)
    flops, largest = _measure(m, [CFG.frames, CFG.height, CFG.width, 3])
    assert flops > 0 and largest > 0


def test_nearest_index_is_interpolates_rule():
    for n_in in range(1, 30):
        for n_out in range(n_in, 150, 7):
            ref = F.interpolate(torch.arange(n_in).float()[None, None], size=n_out, mode="nearest")[0, 0].long()
            assert torch.equal(nearest_index(n_out, n_in, torch.arange(n_out)), ref), (n_in, n_out)


@UPSAMPLING
def test_whole_frame_window_rate_equals_the_slice_rate(upsample):
    m = _model(upsample=upsample)
    idx = torch.tensor([2, 5])
    latents = m.quantized()
    assert torch.allclose(m.rate_bits(latents, idx, (0, CFG.height, 0, CFG.width)), m.rate_bits(latents, idx))


def test_rate_in_small_batches_equals_one_batch(monkeypatch):
    """Batches of a channel's band of rows, with gather caches too small for a level, give the
    one-batch rate: memory follows RATE_BATCH and GATHER_CACHE, not the level."""
    m = _model()
    whole = m.rate_bits()
    monkeypatch.setattr(LatentGrid, "RATE_BATCH", CFG.height * CFG.width // 3)  # a third of a grid a batch
    monkeypatch.setattr(LatentGrid, "GATHER_CACHE", 4 * CFG.height * CFG.width)
    m = _model()
    for _ in range(2):  # the second pass reads what the first cached
        assert torch.allclose(m.rate_bits(), whole, rtol=1e-6)
        assert m.gather_cached() <= LatentGrid.GATHER_CACHE


@UPSAMPLING
def test_a_windowed_step_moves_only_the_latents_its_window_reads(monkeypatch, upsample):
    monkeypatch.setattr(grid_codec, "TRAIN_PIXELS", 16 * 16)
    frames = torch.rand(CFG.frames, CFG.height, CFG.width, 3)
    task = GridTask(video_signal(frames), torch.device("cpu"), RateTarget(lam=1e-3), 0.0)
    assert task.window is not None and task.window[0] * task.window[1] <= 16 * 16
    m = _model(upsample=upsample)
    m.quant_mode = "ste"
    loss, mse = task.batch_loss(m, torch.Generator().manual_seed(1), 1)
    loss.backward()
    grad = m.latents[0].grad.abs().sum(dim=(0, 1))  # (H, W) at full resolution
    rows, cols = grad.sum(1).nonzero().flatten(), grad.sum(0).nonzero().flatten()
    assert torch.isfinite(loss) and 0 < len(rows) < CFG.height and 0 < len(cols) < CFG.width
    # the window, its refinement margin, the taps' reach and the context neighbours: nothing further away
    reach = 2 + 2 * upsample
    assert int(rows.max() - rows.min()) + 1 <= task.window[0] + 2 * CFG.refine + reach
    assert int(cols.max() - cols.min()) + 1 <= task.window[1] + 2 * CFG.refine + reach


@pytest.mark.parametrize("n_in,n_out", [(5, 9), (7, 14), (16, 37), (1, 4), (2, 3), (13, 53)])
def test_bicubic_taps_and_matrix_are_torchs_bicubic(n_in, n_out):
    """The levels' bicubic resize (`resize_matrix`, and the taps windows read) against torch's
    bicubic kernel in float64, borders included."""
    x = torch.randn(3, 1, n_in, n_in, dtype=torch.float64)
    ref = F.interpolate(x, size=(n_out, n_out), mode="bicubic", align_corners=False)[:, 0]
    m = resize_matrix(n_out, n_in, True).double()
    assert torch.allclose(m @ x[:, 0] @ m.T, ref, atol=1e-6)
    idx, w = resize_taps(n_out, n_in, 0, n_out, True)
    rows = sum(x[:, 0].index_select(1, i) * wt.double()[:, None] for i, wt in zip(idx, w))
    assert torch.allclose(rows, F.interpolate(x, size=(n_out, n_in), mode="bicubic", align_corners=False)[:, 0], atol=1e-6)


def _pyramid_reference(frames: torch.Tensor, cfg: GridConfig, step: float) -> list[torch.Tensor]:
    """The analysis pyramid computed on the whole clip at once in float64: residual of the
    coarser levels' reconstruction, averaged over each level's time slice (the last slice
    repeating the last frame), area-pooled, in units of `step`."""
    m = LatentGrid(cfg).double()
    ycc = torch.einsum("ij,tjhw->tihw", _RGB_TO_YCC.double(), frames.double())
    ycc[:, 0] -= 0.5
    recon = torch.zeros_like(ycc)
    idx = torch.arange(cfg.frames)
    out = [None] * cfg.levels
    for k in reversed(range(cfg.levels)):
        c, t, h, w = level_shapes(cfg)[k]
        f = time_factor(cfg, k)
        resid = (ycc - recon).transpose(0, 1)
        pad = t * f - cfg.frames
        if pad:
            resid = torch.cat([resid, resid[:, -1:].expand(-1, pad, -1, -1)], dim=1)
        z = F.adaptive_avg_pool2d(resid.reshape(3, t, f, cfg.height, cfg.width).mean(dim=2), (h, w)) / step
        out[k] = z
        recon += m.level_features(k, z, idx) * step
    return out


# 37x53: no level tiles the one below; 40x48: each does (pooled from the finer level), then
# 44x48 -> 22x24 -> 11x12 -> 6x6 tiles until 11 -> 6, after which levels pool from the frame
@pytest.mark.parametrize("cfg", [CFG, dataclasses.replace(CFG, height=40, width=48), dataclasses.replace(CFG, height=44, width=48, levels=5)], ids=["untiled", "tiled", "mixed"])
def test_the_streamed_analysis_start_matches_a_whole_clip_float64_pyramid(monkeypatch, cfg):
    monkeypatch.setattr(LatentGrid, "RENDER_PIXELS", cfg.height * cfg.width * 3)  # 3 frames a batch
    torch.manual_seed(0)
    frames = F.avg_pool2d(torch.rand(cfg.frames, 3, cfg.height, cfg.width), 3, 1, 1)
    m = LatentGrid(cfg)
    m.init_from_frames(frames, step=1 / 64)
    for got, want in zip(m.latents, _pyramid_reference(frames, cfg, 1 / 64)):
        assert torch.allclose(got.double(), want, atol=1e-3)  # in latent steps (1/64): float32 rounding only


def test_the_planner_counts_the_grids_memory():
    from video.gop_plan import GiB, peak_bytes, plan_gops

    assert peak_bytes(20, 1080, 1920, 0, "grid") < peak_bytes(40, 1080, 1920, 0, "grid")
    plan = plan_gops(600, 1080, 1920, bpp=0.02, budget=3 * GiB, model="grid")
    assert sum(plan.lengths) == 600 and plan.peak_bytes <= 3 * GiB and max(plan.lengths) >= 8


def test_streamed_quality_equals_the_whole_clips(monkeypatch):
    """The encoder's report scores a video a render batch at a time; merged, the numbers are
    those of scoring the whole decoded clip at once."""
    from inr.export.codec import decode_model
    from inr.export.grid_codec import encode_rate_aware
    from inr.fit import FitConfig
    from inr.models import get_spec
    from video.encode import measure_decoded, quality

    torch.manual_seed(0)
    frames = (F.avg_pool2d(torch.rand(6, 3, 24, 32), 3, 1, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    signal = video_signal(frames)
    spec = get_spec("grid")
    cfg = spec.adapt(GridConfig(), signal)
    enc = encode_rate_aware(signal, spec, cfg, LatentGrid(cfg), FitConfig(steps=4), RateTarget(bpp=0.5), {"kind": "video", "shape": list(frames.shape)}, torch.device("cpu"))
    monkeypatch.setattr(LatentGrid, "RENDER_PIXELS", 24 * 32 * 2)  # two frames a batch: three pieces
    streamed, _, seconds = measure_decoded(enc.data, frames, "video", torch.device("cpu"))
    _, _, model, header = decode_model(enc.data)
    whole = quality(model.render(header["signal"]["shape"], torch.device("cpu")), frames, "video")
    assert seconds > 0 and streamed["per_frame_psnr"] == whole["per_frame_psnr"]
    for key in ("psnr", "psnr_y", "msssim"):
        assert abs(streamed[key] - whole[key]) < 1e-9, key
