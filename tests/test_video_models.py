"""NeRV / NeRV++ / HNeRV and coordinate video models: geometry, sizing, over-fitting."""
from __future__ import annotations


import pytest
import torch

from inr.errors import InrError
from inr.fit import FitConfig
from inr.models import get_spec, size_to_budget
from inr.models.geometry import derive_geometry, split_strides
from inr.models.sizing import stored_params
from inr.pipeline import FitOptions, build_model, fit_signal
from inr.signals import video_signal


@pytest.mark.parametrize(
    "h,w,min_base,strides,base",
    [
        (720, 1280, 8, (5, 2, 2, 2, 2), (9, 16)),  # NeRV's 720p setting
        (640, 1280, 2, (5, 4, 4, 2, 2), (2, 4)),  # HNeRV's Bunny crop: 16x2x4 embeddings
        (640, 1280, 8, (5, 2, 2, 2, 2), (8, 16)),
        (180, 320, 8, (5, 2, 2), (9, 16)),
        (144, 176, 8, (2, 2, 2, 2), (9, 11)),
        (1080, 1920, 8, (5, 3, 2, 2, 2), (9, 16)),
    ],
)
def test_stride_derivation(h, w, min_base, strides, base):
    g = derive_geometry(h, w, min_base=min_base, max_base=16)
    assert g.strides == strides and g.base == base and (g.pad_height, g.pad_width) == (h, w)


def test_awkward_size_is_padded_and_cropped_back():
    g = derive_geometry(197, 350, min_base=2, max_base=10)
    assert g.pad_height >= 197 and g.pad_width >= 350
    assert g.pad_height % g.total_stride == 0 and g.pad_width % g.total_stride == 0
    spec = get_spec("nerv")
    sig = video_signal(torch.rand(2, 197, 350, 3))
    cfg = spec.adapt(spec.config_cls(), sig)
    out = spec.model_cls(cfg)(torch.arange(2))
    assert out.shape == (2, 3, 197, 350)


def test_split_strides():
    assert split_strides(320, 5) == (5, 4, 4, 2, 2)
    assert split_strides(80, 4) == (5, 4, 2, 2)
    assert split_strides(80, 5) == (5, 2, 2, 2, 2)


def test_too_small_frame_is_a_clear_error():
    with pytest.raises(InrError, match="too small"):
        derive_geometry(4, 4, min_base=8, max_base=16)


def _bunny_cfg(name: str):
    spec = get_spec(name)
    sig = video_signal(torch.zeros(132, 640, 1280, 3, dtype=torch.uint8).expand(132, 640, 1280, 3))
    return spec, spec.adapt(spec.config_cls(), sig)


@pytest.mark.parametrize("name", ["hnerv", "nerv"])
@pytest.mark.parametrize("budget", [350_000, 750_000, 1_500_000, 3_000_000])
def test_bunny_1280x640_paper_budgets(name, budget):
    spec, cfg = _bunny_cfg(name)
    sized = size_to_budget(spec, cfg, budget)
    got = stored_params(spec, sized)
    assert abs(got - budget) <= 0.05 * budget, got
    if name == "hnerv":
        model = spec.model_cls(sized)
        assert model.embed_shape == (16, 2, 4)  # the paper's 16x2x4 embedding per frame
        decoder = sum(p.numel() for p in model.decoder.parameters())
        assert got == decoder + 132 * 16 * 2 * 4  # decoder + embeddings; the encoder is not stored


@pytest.mark.parametrize("name", ["nerv", "nervpp", "hnerv", "grid"])
def test_render_batches_follow_the_frame_size(name):
    """A decoder renders a few small frames a call but one large frame at a time: its
    activations follow the batch (four 1080p frames through HNeRV held 1.2 GiB)."""
    spec, cfg = _bunny_cfg(name)
    model = spec.model_cls(size_to_budget(spec, cfg, 350_000) if name != "grid" else cfg)
    assert model.render_batch(132, 180, 320) == model.RENDER_BATCH
    assert model.render_batch(132, 640, 1280) == 1
    assert model.render_batch(132, 1080, 1920) == 1


@pytest.mark.parametrize("name", ["nerv", "nervpp", "hnerv", "siren", "hashgrid"])
@pytest.mark.parametrize("budget", [40_000, 120_000])
def test_budget_sizing_within_5_percent(tiny_clip, name, budget):
    spec = get_spec(name)
    cfg = spec.adapt(spec.config_cls(), video_signal(tiny_clip))
    assert abs(stored_params(spec, size_to_budget(spec, cfg, budget)) - budget) <= 0.05 * budget


VIDEO_CASES = [
    # model, budget or overrides, epochs, lr, frames per batch, PSNR it must beat
    ("nerv", 30_000, None, 300, 5e-3, 2, 24.0),
    ("nervpp", 30_000, None, 150, 5e-3, 2, 21.0),
    ("hnerv", 30_000, None, 100, 5e-3, 2, 25.0),
    ("siren", None, {"hidden": 64, "layers": 2}, 150, None, None, 18.0),
    ("hashgrid", None, {"table_size": 2**13, "n_levels": 6, "hidden": 32, "base_resolution": 4}, 40, None, 8192, 24.0),
]


@pytest.mark.parametrize("name,budget,overrides,epochs,lr,batch,min_psnr", VIDEO_CASES, ids=[c[0] for c in VIDEO_CASES])
def test_video_model_overfits_tiny_real_clip(tiny_clip, name, budget, overrides, epochs, lr, batch, min_psnr):
    sig = video_signal(tiny_clip)
    opts = FitOptions(model=name, params=budget, overrides=overrides, batch_size=batch, fit=FitConfig(epochs=epochs, lr=lr))
    out = fit_signal(sig, opts, torch.device("cpu"))
    m = out.metrics
    assert round(out.state.epoch) == epochs
    assert m["psnr"] > min_psnr, m["psnr"]
    assert len(m["per_frame_psnr"]) == 8 and 0 < m["msssim"] <= 1 and m["decode_fps"] > 0
    assert out.reconstruction.shape == (8, 64, 96, 3)


def test_hnerv_beats_nerv_at_equal_size_and_epochs(tiny_clip):
    sig = video_signal(tiny_clip)
    res = {}
    for name in ("nerv", "hnerv"):
        opts = FitOptions(model=name, params=30_000, batch_size=2, fit=FitConfig(epochs=100, lr=5e-3))
        res[name] = fit_signal(sig, opts, torch.device("cpu")).metrics["psnr"]
    assert res["hnerv"] > res["nerv"] + 1.0, res


@pytest.mark.parametrize("name", ["siren", "nerv"])
def test_a_quick_evaluation_keeps_the_psnrs_definition(tiny_clip, name):
    """`evaluate(full=False)` drops the costly metrics (MS-SSIM), not the PSNR's definition:
    a video's is the mean of its frames' either way, for coordinate and frame families."""
    signal = video_signal(tiny_clip[:4, :32, :48])
    _, model = build_model(get_spec(name), signal, 20_000, None, 0)
    task = model.make_task(signal, torch.device("cpu"), FitOptions(model=name, fit=FitConfig(steps=1)))
    full, quick = task.evaluate(model), task.evaluate(model, full=False)
    assert quick["psnr"] == pytest.approx(full["psnr"])
    assert "msssim" in full and "msssim" not in quick
