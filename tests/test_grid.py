"""The rate-aware latent-grid family: entropy coding of the latents, the rate the loss sees,
the file round trip, rate control and bad input."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from inr.bitstream import BitstreamError
from inr.export.grid_codec import decode_latents, encode_latents
from inr.models.grid import GridConfig, LatentGrid, laplace_bits, previous_slices
from tests.test_cli import run_cli, small_png  # noqa: F401  (fixture)


def _random_model(cfg: GridConfig, scale: float, seed: int = 0) -> LatentGrid:
    torch.manual_seed(seed)
    m = LatentGrid(cfg)
    with torch.no_grad():
        for p in m.context.parameters():
            p.normal_(0, 0.2)
        for z in m.latents:
            lap = torch.distributions.Laplace(0.0, scale)
            z.copy_(torch.round(lap.sample(z.shape)))
        m.context.level_bias[:, 1] = math.log(scale)
        for z, context in m.per_frame():  # motion fields, residual latents
            for p in context.parameters():
                p.normal_(0, 0.2)
            z.copy_(torch.round(torch.distributions.Laplace(0.0, scale).sample(z.shape)))
    return m.eval()


def test_laplace_bits_match_a_float64_reference():
    x = torch.tensor([-7.0, -1.0, 0.0, 0.0, 1.0, 3.0, 40.0], dtype=torch.float64)
    mean = torch.tensor([0.3, -0.2, 0.0, 0.45, 1.2, -2.0, 0.0], dtype=torch.float64)
    log_scale = torch.tensor([0.0, 1.0, -1.0, 0.5, 2.0, 0.0, 1.0], dtype=torch.float64)
    b = log_scale.exp()

    def cdf(v):
        return torch.where(v < mean, 0.5 * torch.exp((v - mean) / b), 1 - 0.5 * torch.exp(-(v - mean) / b))

    ref = -torch.log2(cdf(x + 0.5) - cdf(x - 0.5)).sum()
    assert float(laplace_bits(x, mean, log_scale)) == pytest.approx(float(ref), rel=1e-9)


def test_synthesis_is_the_per_pixel_mlp_then_the_refinement():
    """synthesize() runs the MLP channels-first on each frame; a float64 reference applies
    it pixel by pixel, as a list of (C,) vectors, then the replicate-padded 3x3 residual convs."""
    cfg = GridConfig(frames=2, height=9, width=13, levels=3)
    m = LatentGrid(cfg).double()
    torch.manual_seed(3)
    with torch.no_grad():
        for p in [*m.synthesis.parameters(), *m.refine.parameters()]:
            p.normal_(0, 0.3)
    feats = torch.randn(2, m.synthesis[0].in_features, cfg.height, cfg.width, dtype=torch.float64)
    x = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    for layer in m.synthesis:
        x = x @ layer.weight.T + layer.bias if isinstance(layer, torch.nn.Linear) else torch.relu(x)
    ref = x.reshape(2, cfg.height, cfg.width, -1).permute(0, 3, 1, 2)
    for conv in m.refine:
        padded = torch.nn.functional.pad(torch.relu(ref), (1, 1, 1, 1), mode="replicate")
        ref = ref + torch.nn.functional.conv2d(padded, conv.weight, conv.bias)
    out = m.synthesize(feats)
    assert out.shape == (2, 3, cfg.height, cfg.width)
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("temporal,coarse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_the_rate_estimate_and_the_coder_run_one_context_network(temporal, coarse):
    """The estimate's channels-first order and the coder's sites-first order are one network:
    both match a float64 evaluation to float32 rounding."""
    cfg = GridConfig(frames=4, height=20, width=36, levels=3, context=8, time_base=2, temporal=temporal, coarse_context=coarse)
    m = _random_model(cfg, scale=3.0)
    z = m.coded(0).detach()
    grids = z.reshape(-1, *z.shape[-2:])
    up = m.coarser_at(0, m.coded(1).detach())
    prev = previous_slices(z)
    ref = m.context.double().params(0, grids.double(), up.double(), tuple(t.double() for t in prev), coder=True)
    m.context.float()
    with torch.no_grad():
        for coder in (True, False):
            got = m.context.params(0, grids, up, prev, coder=coder)
            for g, r in zip(got, ref):
                assert g.dtype == torch.float32 and g.shape == grids.shape
                assert torch.allclose(g.double(), r, atol=1e-5)


@pytest.mark.parametrize("context,temporal,motion,residual,coarse,luma", [(0, 0, 0, 0, 0, 0), (8, 0, 0, 0, 0, 0), (8, 1, 0, 0, 0, 0), (8, 1, 4, 0, 0, 0), (0, 0, 8, 0, 0, 0), (8, 1, 4, 2, 0, 0), (8, 0, 0, 4, 0, 0), (8, 0, 0, 0, 1, 0), (8, 1, 4, 4, 1, 0), (8, 1, 4, 4, 1, 2)])
def test_latents_round_trip_bit_exactly(context, temporal, motion, residual, coarse, luma):
    cfg = GridConfig(frames=3, height=24, width=40, levels=4, time_base=1, time_growth=1, context=context, temporal=temporal, motion=motion, residual=residual, coarse_context=coarse, luma_levels=luma)
    enc = _random_model(cfg, scale=3.0)
    payload, records = encode_latents(enc)
    dec = LatentGrid(cfg)
    dec.load_state_dict({k: v for k, v in enc.state_dict().items()})
    with torch.no_grad():
        for k in range(dec.num_coded):
            dec.coded(k).fill_(99.0)
    decode_latents(dec, payload, records)
    assert len(records) == cfg.levels + bool(motion) + bool(residual)
    for k in range(enc.num_coded):
        assert torch.equal(enc.coded(k), dec.coded(k))


@pytest.mark.parametrize("frames,temporal,motion,residual,coarse,luma", [(1, 0, 0, 0, 0, 0), (4, 1, 0, 0, 0, 0), (4, 1, 8, 0, 0, 0), (4, 1, 8, 4, 0, 0), (1, 0, 0, 0, 1, 0), (4, 1, 8, 4, 1, 0), (4, 1, 8, 4, 1, 1)])
def test_rate_estimate_is_the_coded_size(frames, temporal, motion, residual, coarse, luma):
    cfg = GridConfig(frames=frames, height=128, width=128, levels=5, context=8, time_base=1, time_growth=1, temporal=temporal, motion=motion, residual=residual, coarse_context=coarse, luma_levels=luma)
    m = _random_model(cfg, scale=2.0, seed=1)
    payload, _ = encode_latents(m)
    with torch.no_grad():
        estimate = float(m.rate_bits())
    assert len(payload) * 8 == pytest.approx(estimate, rel=0.03)


@pytest.mark.parametrize("coarse,finest,luma", [(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 1, 1)])
def test_raster_coded_latents_round_trip_and_cost_their_estimate(coarse, finest, luma):
    """An image's levels coded in raster wavefronts: decoded bit-exactly, and the rate the loss
    sees (every site's causal neighbours at once) is what the wavefront coder pays. (With
    `finest` 1, level 0 is half the image's resolution; with `luma`, it holds one grid.)"""
    cfg = GridConfig(frames=1, height=40, width=56, levels=4, context=8, raster=1, coarse_context=coarse, finest=finest, luma_levels=luma)
    enc = _random_model(cfg, scale=3.0)
    assert tuple(enc.latents[0].shape[-2:]) == (40 // 2**finest, 56 // 2**finest)
    payload, records = encode_latents(enc)
    dec = LatentGrid(cfg)
    dec.load_state_dict(enc.state_dict())
    with torch.no_grad():
        for k in range(dec.num_coded):
            dec.coded(k).fill_(99.0)
    decode_latents(dec, payload, records)
    for k in range(enc.num_coded):
        assert torch.equal(enc.coded(k), dec.coded(k))
    with torch.no_grad():
        assert len(payload) * 8 == pytest.approx(float(enc.rate_bits()), rel=0.03)


def test_raster_wavefronts_only_read_earlier_wavefronts():
    """Every site of an h x w grid is in exactly one wavefront, and every raster neighbour of
    a site inside the grid is in an earlier one: what lets a wavefront decode at once."""
    from inr.models.grid import RASTER_NEIGHBOURS, raster_passes

    h, w = 7, 9
    when = torch.full((h, w), -1)
    for t, (ys, xs) in enumerate(raster_passes(h, w)):
        assert bool((when[ys, xs] == -1).all())
        when[ys, xs] = t
    assert bool((when >= 0).all())
    for y in range(h):
        for x in range(w):
            for dy, dx in RASTER_NEIGHBOURS:
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    assert when[y + dy, x + dx] < when[y, x]


def test_the_raster_context_matches_its_wavefront_evaluation():
    """The loss's context (all sites at once, channels-first) and the coder's wavefront
    evaluation are one network over the same causal features: checked against float64."""
    from inr.models.grid import raster_passes

    cfg = GridConfig(frames=1, height=12, width=10, levels=2, context=8, raster=1, coarse_context=1)
    m = _random_model(cfg, scale=3.0)
    z = m.coded(0).detach().reshape(-1, 12, 10)
    up = m.coarser_at(0, m.coded(1).detach())
    with torch.no_grad():
        mean, log_scale = m.context.params(0, z, up)
        ref = m.context.double().params(0, z.double(), up.double(), coder=True)
        m.context.float()
        for ys, xs in raster_passes(12, 10):
            wm, ws = m.context.wavefront_params(0, z, up, ys, xs)
            assert torch.allclose(wm.double(), ref[0][:, ys, xs], atol=1e-5)
            assert torch.allclose(ws.double(), ref[1][:, ys, xs], atol=1e-5)
    assert torch.allclose(mean.double(), ref[0], atol=1e-5) and torch.allclose(log_scale.double(), ref[1], atol=1e-5)


def test_the_coarse_context_reads_the_coarser_grids_neighbours():
    """With `coarse_context` the context of a level-k site holds the co-located level-k+1 value
    and that value's four neighbours in the coarser grid, zero outside it: checked against
    an explicit loop."""
    cfg = GridConfig(frames=1, height=12, width=10, levels=2, context=4, coarse_context=1)
    m = _random_model(cfg, scale=3.0)
    coarse = m.coded(1).detach()  # (3, 1, 6, 5)
    got = m.coarser_at(0, coarse)  # (5, 3, 12, 10)
    assert got.shape == (5, 3, 12, 10)
    for c in range(3):
        for y in range(12):
            for x in range(10):
                yc, xc = y * 6 // 12, x * 5 // 10
                for i, (dy, dx) in enumerate(((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))):
                    inside = 0 <= yc + dy < 6 and 0 <= xc + dx < 5
                    want = float(coarse[c, 0, yc + dy, xc + dx]) if inside else 0.0
                    assert float(got[i, c, y, x]) == want


def test_corrupt_latent_payload_is_a_bitstream_error():
    cfg = GridConfig(frames=1, height=16, width=16, levels=3, context=4)
    m = _random_model(cfg, scale=2.0)
    payload, records = encode_latents(m)
    with pytest.raises(BitstreamError):
        decode_latents(m, payload[:-4] if len(payload) > 4 else b"\x01\x02", records)
    bad = [dict(r) for r in records]
    bad[0]["min"] = "x"
    with pytest.raises(BitstreamError):
        decode_latents(m, payload, bad)


@pytest.mark.parametrize(
    "cfg",
    [
        GridConfig(frames=8, height=16, width=24, levels=3, context=4, time_base=4, time_growth=1, temporal=1, coarse_context=1, motion=8, residual=4),
        GridConfig(frames=1, height=20, width=26, levels=3, context=4, raster=1, coarse_context=1, luma_levels=1),
        GridConfig(frames=8, height=15, width=22, levels=3, context=4, time_base=2, time_growth=2, temporal=1),
        GridConfig(frames=4, height=16, width=16, levels=2, context=0),
    ],
    ids=["video-motion-residual", "image-raster-luma", "video-doubling", "factorized"],
)
def test_batched_rate_equals_the_coders_per_chunk_sum(monkeypatch, cfg):
    """The training rate gathers every context input of many channels, slices and levels at
    once (`_gathered_bits`); it must price every latent as the coder's per-channel chunks
    do, with each level's slice scaling, in value and gradient."""
    m = _random_model(cfg, scale=2.0)
    with torch.no_grad():
        m.context.level_bias.add_(torch.randn_like(m.context.level_bias) * 0.3)  # levels priced apart
    monkeypatch.setattr(LatentGrid, "RATE_BATCH", 700)  # several flushes, pieces split across them
    idx = torch.tensor([1, 6])

    def per_chunk(latents):
        total = torch.zeros((), dtype=torch.float64)
        frames = torch.unique(idx)
        for k in range(cfg.levels, m.num_coded):
            z = latents[k]
            for _, g, mean, ls in m.context_chunks(k, z, None, frames):
                total = total + laplace_bits(g.double(), mean.double(), ls.double()) * (z.shape[1] / frames.numel())
        for k in reversed(range(cfg.levels)):
            z = latents[k]
            slices = torch.unique(m.slices_for(k, idx))
            coarser = latents[k + 1] if k + 1 < cfg.levels else None
            for _, g, mean, ls in m.context_chunks(k, z, coarser, slices):
                total = total + laplace_bits(g.double(), mean.double(), ls.double()) * (z.shape[1] / slices.numel())
        return total

    def grads(fn):
        m.zero_grad()
        latents = [m.coded(k) for k in range(m.num_coded)]
        value = fn(latents)
        value.backward()
        return float(value.detach()), [p.grad.clone() for p in m.parameters() if p.grad is not None]

    got, got_grads = grads(lambda lat: m.rate_bits(lat, idx))
    ref, ref_grads = grads(per_chunk)
    assert got == pytest.approx(ref, rel=1e-5)
    assert len(got_grads) == len(ref_grads)
    for a, b in zip(got_grads, ref_grads):
        assert torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5)


def test_batch_rate_is_an_unbiased_slice_estimate():
    """Scoring only the time slices a batch reads, scaled up, averages to the full rate."""
    cfg = GridConfig(frames=8, height=16, width=24, levels=3, context=4)
    m = _random_model(cfg, scale=2.0)
    with torch.no_grad():
        full = float(m.rate_bits())
        parts = [float(m.rate_bits(idx=torch.tensor([t]))) for t in range(8)]
    assert np.mean(parts) == pytest.approx(full, rel=0.15)


# ------------------------------------------------------------------ through the CLI
@pytest.fixture(scope="module")
def grid_files(tmp_path_factory, small_png, tiny_clip_file):
    out = tmp_path_factory.mktemp("grid")
    runs = {
        "image": run_cli("encode", str(small_png), "-o", str(out / "img.inr"), "--model", "grid", "--steps", "60", "--lambda", "0.002"),
        "video": run_cli("encode", str(tiny_clip_file), "-o", str(out / "clip.inr"), "--model", "grid", "--steps", "60", "--bpp", "0.6"),
    }
    return out, runs


def test_grid_image_encodes_and_decodes_to_png(grid_files):
    out, runs = grid_files
    assert runs["image"].returncode == 0, runs["image"].stderr
    r = run_cli("decode", str(out / "img.inr"), "-o", str(out / "img.png"))
    assert r.returncode == 0, r.stderr
    from PIL import Image

    assert Image.open(out / "img.png").size == (64, 64)
    info = run_cli("info", str(out / "img.inr"))
    assert "section:LATS" in info.stdout


def test_grid_decode_is_the_encoders_model(grid_files):
    """The decoder rebuilds exactly what the encoder measured: the report's PSNR is the
    decoded file's, twice the same."""
    import json

    from inr.export.compress import decode_bytes

    out, runs = grid_files
    assert runs["video"].returncode == 0, runs["video"].stderr
    data = (out / "clip.inr").read_bytes()
    a, header, _ = decode_bytes(data, torch.device("cpu"))
    b, _, _ = decode_bytes(data, torch.device("cpu"))
    assert torch.equal(a, b) and a.shape == (8, 64, 96, 3)
    report = json.loads((out / "clip.inr.json").read_text())
    assert report["model"] == "grid" and report["bytes"] == len(data)
    assert report["rate_control"]["attempts"] and len(report["rate_control"]["attempts"]) == 1  # one fit, no refits


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lambda", "0"], "positive"),
        (["--lambda", "-1"], "positive"),
        (["--bpp", "0"], "positive"),
    ],
)
def test_grid_bad_rate_arguments_exit_2(tmp_path, small_png, args, message):
    r = run_cli("encode", str(small_png), "-o", str(tmp_path / "x.inr"), "--model", "grid", "--steps", "5", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.inr").exists()


def test_more_bits_never_give_a_worse_picture(tiny_clip):
    """At one fixed budget, a higher rate target must not give a lower PSNR (the demo used to
    show 19.5 dB at 0.2 bpp and 17.8 dB at 0.4 bpp)."""
    from inr.export.compress import ExportOptions, encode_to_bpp
    from inr.fit import FitConfig
    from inr.pipeline import FitOptions
    from inr.signals import video_signal

    signal = video_signal(tiny_clip)
    opts = FitOptions(model="grid", fit=FitConfig(steps=80))
    psnr = {}
    for bpp in (0.4, 1.6):
        enc, report = encode_to_bpp(signal, opts, ExportOptions(), bpp, torch.device("cpu"))
        psnr[bpp] = enc.float_metrics["psnr"]
        assert report["attempts"][0]["bytes"] == len(enc.data)
    assert psnr[1.6] > psnr[0.4], psnr


def test_a_fit_never_ends_below_its_start(crop64):
    """A tiny picture starts near 60 dB; a few steps at the peak learning rate used to leave it
    at 20 dB (and below the PSNR of a lower target): the encoder keeps the start then."""
    from inr.export.compress import ExportOptions, encode_to_bpp
    from inr.fit import FitConfig
    from inr.pipeline import FitOptions
    from inr.signals import image_signal

    signal = image_signal(crop64[:24, :24])
    opts = FitOptions(model="grid", fit=FitConfig(steps=30))
    psnr = {}
    for bpp in (4.0, 100.0):
        enc, _ = encode_to_bpp(signal, opts, ExportOptions(), bpp, torch.device("cpu"))
        psnr[bpp] = enc.float_metrics["psnr"]
    assert psnr[100.0] > 45.0 and psnr[100.0] >= psnr[4.0], psnr


@pytest.mark.parametrize("luma_levels", [0, 1, 2])
def test_grid_starts_from_the_picture(tiny_clip, luma_levels):
    """The analysis start reconstructs the clip before any training step, also where the
    finest levels hold luma alone (their chroma detail is then dropped, not misplaced)."""
    from inr.metrics import psnr
    from inr.models import get_spec
    from inr.pipeline import build_model
    from inr.signals import video_signal

    signal = video_signal(tiny_clip)
    _, model = build_model(get_spec("grid"), signal, None, {"luma_levels": luma_levels}, 0)
    assert [z.shape[0] for z in model.latents[:3]] == [1] * luma_levels + [3] * (3 - luma_levels)
    model.quant_mode = "round"
    with torch.no_grad():
        out = model(torch.arange(8)).clamp(0, 1).permute(0, 2, 3, 1)
    assert psnr(out, signal.data) > 24.0


def test_coarser_levels_are_read_at_finer_steps(tiny_clip):
    """New encodes read level k's integers at 2^-k (`level_gain`, images too): the analysis
    start then puts finer steps on the coarser levels and reconstructs the clip as well as
    with one step; the file round-trips bit-exactly and a header out of range is refused."""
    from inr.export.compress import ExportOptions, decode_bytes, encode_signal
    from inr.fit import FitConfig
    from inr.metrics import psnr
    from inr.models import get_spec
    from inr.models.grid import level_gains
    from inr.pipeline import FitOptions, build_model
    from inr.signals import image_signal, video_signal

    assert get_spec("grid").adapt(GridConfig(), video_signal(tiny_clip)).level_gain == 1
    assert get_spec("grid").adapt(GridConfig(), image_signal(tiny_clip[0])).level_gain == 1
    signal = video_signal(tiny_clip)
    outs, spans = [], []
    for gain in (0, 1):
        _, model = build_model(get_spec("grid"), signal, None, {"level_gain": gain}, 0)
        model.retarget(0.5, signal.num_samples)
        model.quant_mode = "round"
        with torch.no_grad():
            outs.append(model(torch.arange(8)).clamp(0, 1).permute(0, 2, 3, 1))
        spans.append([float(torch.round(z.detach()).abs().max()) for z in model.latents])
    assert level_gains(model.config) == [2.0**-k for k in range(model.config.levels)]
    assert psnr(outs[1], signal.data) > psnr(outs[0], signal.data) - 1.0
    assert spans[1][-1] > spans[0][-1]  # the coarsest level holds larger integers: a finer step
    with pytest.raises(ValueError, match="level_gain"):
        dataclasses.replace(model.config, level_gain=2).validate()
    sig = video_signal(tiny_clip[:2, :32, :48])
    opts = FitOptions(model="grid", overrides={"level_gain": 1}, fit=FitConfig(steps=10))
    enc = encode_signal(sig, opts, ExportOptions(bits=8), torch.device("cpu"))
    decoded, header, _ = decode_bytes(enc.data, torch.device("cpu"))
    assert header["config"]["level_gain"] == 1
    assert torch.equal(decoded, enc.model.render(list(sig.data.shape), torch.device("cpu")))


def test_images_upsample_bicubically_and_start_from_the_picture(crop64, tiny_clip):
    """An image's levels are upsampled bicubically (a video's, warped by its motion fields,
    bilinearly), and the analysis start, read through that upsampling, reconstructs it."""
    from inr.metrics import psnr
    from inr.models import get_spec
    from inr.pipeline import build_model
    from inr.signals import image_signal, video_signal

    signal = image_signal(crop64)
    _, model = build_model(get_spec("grid"), signal, None, None, 0)
    assert model.config.upsample == 1
    model.quant_mode = "round"
    with torch.no_grad():
        out = model(torch.arange(1)).clamp(0, 1)[0].permute(1, 2, 0)
    assert psnr(out, signal.data) > 40.0
    _, video = build_model(get_spec("grid"), video_signal(tiny_clip), None, None, 0)
    assert video.config.upsample == 0
    with pytest.raises(ValueError, match="upsample"):
        GridConfig(frames=2, height=16, width=24, levels=2, time_base=2, time_growth=1, motion=4, upsample=1).validate()


@pytest.mark.parametrize("kind", ["image", "video"])
@pytest.mark.parametrize("mutator", ["crc-fixed", "header-text", "header-json"])
def test_hostile_grid_files_end_in_one_bitstream_error(crop64, tiny_clip, mutator, kind):
    """Mutations of a grid file behind valid CRCs (the LATS section and the `latents`
    header records included, the video's motion fields, residual latents and their config
    fields too) either decode or raise BitstreamError: nothing else."""
    import random

    from inr.export.compress import decode_bytes
    from inr.export.hostile import MUTATORS, seed_file
    from inr.signals import image_signal, video_signal

    signal = image_signal(crop64[:32, :32]) if kind == "image" else video_signal(tiny_clip[:4, :32, :48])
    valid = seed_file(signal, "grid", 2_000)
    if kind == "video":
        config = decode_bytes(valid, torch.device("cpu"))[1]["config"]
        assert config["motion"] > 0 and config["residual"] > 0  # the fields and the residual are in the file
    rng = random.Random(0)
    outcomes = set()
    for _ in range(60):
        data = MUTATORS[mutator](valid, rng)
        if data is None:
            continue
        try:
            decode_bytes(data, torch.device("cpu"))
            outcomes.add("decoded")
        except BitstreamError as exc:
            assert "\n" not in str(exc)
            outcomes.add("error")
    assert "error" in outcomes


@pytest.mark.parametrize("temporal, per_frame", [(0, 0), (1, 0), (1, 1)])
def test_coding_chunks_are_not_part_of_the_format(monkeypatch, temporal, per_frame):
    """A coder may evaluate a pass in any chunks (docs/bitstream.md): one grid at a time gives
    the same bytes as whole passes (every channel of a pass in one network call: the per-frame
    motion fields' four grids and the residual's three included), and each decodes the
    other's file."""
    cfg = GridConfig(frames=4, height=24, width=40, levels=3, time_base=1, time_growth=1, context=8, temporal=temporal, motion=8 * per_frame, residual=4 * per_frame)
    enc = _random_model(cfg, scale=3.0, seed=2)
    whole, records = encode_latents(enc)
    monkeypatch.setattr(LatentGrid, "RATE_CHUNK", 1)  # one grid (channel, slice) per chunk
    chunked, _ = encode_latents(enc)
    assert chunked == whole
    dec = LatentGrid(cfg)
    dec.load_state_dict(enc.state_dict())
    decode_latents(dec, whole, records)
    assert all(torch.equal(enc.coded(k), dec.coded(k)) for k in range(enc.num_coded))


def test_video_time_layout_follows_the_rate(tiny_clip):
    """Without motion fields, few latent slices where bits are scarce and the finer doubling
    layout where they are not; with them (small frames), one slice per 8 frames at every
    level whatever the rate. A header without `time_growth` (files before the field) means
    the doubling, one without `motion` no fields."""
    from inr.models.grid import FINE_TIME_BPP, level_shapes, video_time_structure
    from inr.models.registry import config_from_dict, get_spec
    from inr.pipeline import build_model
    from inr.signals import video_signal

    assert video_time_structure(32, 0.5 * FINE_TIME_BPP) == (8, 1)
    assert video_time_structure(32, 2 * FINE_TIME_BPP) == (4, 2)
    assert video_time_structure(32, 2 * FINE_TIME_BPP, motion=True) == (16, 1)
    signal = video_signal(tiny_clip)
    pixels = signal.num_samples
    spec = get_spec("grid")
    low, _ = build_model(spec, signal, None, None, 0, rate_bits=0.5 * FINE_TIME_BPP * pixels)
    high, _ = build_model(spec, signal, None, None, 0, rate_bits=2 * FINE_TIME_BPP * pixels)
    from inr.models.grid import MOTION_CELL, MOTION_COARSE_BPP, MOTION_COARSE_CELL, RESIDUAL_MIN_BPP

    for cfg, cell in ((low, MOTION_COARSE_CELL), (high, MOTION_CELL)):  # 8 frames of 96x64: motion fields, one slice a level
        assert (cfg.time_base, cfg.time_growth, cfg.temporal, cfg.motion) == (8, 1, 0, cell)
        assert [s[1] for s in level_shapes(cfg)] == [1] * cfg.levels
    assert 0.5 * FINE_TIME_BPP < MOTION_COARSE_BPP < 2 * FINE_TIME_BPP
    assert (low.residual, high.residual) == (4, 4)
    scarce, _ = build_model(spec, signal, None, None, 0, rate_bits=0.5 * RESIDUAL_MIN_BPP * pixels)
    assert scarce.residual == 0  # per-frame residual latents only where bits allow
    scarce, _ = build_model(spec, signal, None, None, 0, rate_bits=0.5 * MOTION_COARSE_BPP * pixels)
    assert scarce.motion == MOTION_COARSE_CELL  # few bits: coarser motion fields
    high = dataclasses.replace(high, time_base=4, temporal=1)
    old = {k: v for k, v in dataclasses.asdict(high).items() if k not in ("time_growth", "motion", "residual")}
    assert (config_from_dict(spec, old).time_growth, config_from_dict(spec, old).motion, config_from_dict(spec, old).residual) == (2, 0, 0)
    from inr.models.grid import MOTION_MAX_PIXELS

    big = dataclasses.replace(high, height=512, width=512)
    assert big.height * big.width > MOTION_MAX_PIXELS
    bad_residual = (dataclasses.replace(high, residual=3), dataclasses.replace(big, motion=0), dataclasses.replace(high, motion=0, frames=1))
    for bad in (dataclasses.replace(high, motion=5), dataclasses.replace(high, time_growth=2), big, dataclasses.replace(high, frames=1), *bad_residual):
        with pytest.raises(ValueError):
            bad.validate()


# ------------------------------------------------------------------ motion
def test_motion_fields_sample_where_the_content_came_from():
    """A field of (dy, dx) = (1, 2) pixels makes a frame read its slice one row up and two
    columns left (inside the frame: the edges clamp); zero fields render exactly what the
    in-place blend renders."""
    from inr.models.motion import MOTION_STEP

    cfg = GridConfig(frames=2, height=16, width=24, levels=2, time_base=2, time_growth=1, motion=4)
    m = _random_model(cfg, scale=3.0)
    idx = torch.arange(2)
    levels = [m.latents[k].detach().double() for k in range(cfg.levels)]
    with torch.no_grad():
        still = m.compensated(idx, levels, torch.zeros_like(m.motion_latents, dtype=torch.float64))
        plain = torch.cat([m.level_features(k, z, idx) for k, z in enumerate(levels)], dim=1)
        assert torch.allclose(still, plain, atol=1e-4)  # float32 sampling positions
        motion = torch.zeros_like(m.motion_latents, dtype=torch.float64)
        motion[0], motion[1] = 1 / MOTION_STEP, 2 / MOTION_STEP  # towards the lower slice (the only one here)
        moved = m.compensated(idx, levels, motion)
    ref = levels[0][:, 0]  # level 0 is at full resolution: (C, H, W)
    assert torch.allclose(moved[:, :3, 1:, 2:], ref[None, :, :-1, :-2].expand(2, -1, -1, -1), atol=1e-4)


def test_the_header_probe_warps_to_the_kernels_shape():
    """On the meta device (the header check's cost probe) `warp` skips torch's slow
    decomposition and gives the shape the real kernel gives."""
    from inr.models.motion import sampling_grid, warp

    image, disp = torch.rand(2, 5, 6, 8), torch.rand(2, 2, 3, 4)
    real = warp(image, sampling_grid(disp, 12, 16))
    meta = warp(image.to("meta"), sampling_grid(disp.to("meta"), 12, 16))
    assert meta.is_meta and meta.shape == real.shape == (2, 5, 12, 16)


def test_a_residual_cell_adds_to_its_own_frame_only():
    """Residual latents are per frame: +1 in frame 1's luma residual changes frame 1 alone,
    by the latent step times the cell's bilinear footprint (float64 reference) in every RGB
    channel, because the analysis start reads the residual like a level (the same YCbCr ->
    RGB columns, through the exact ReLU pairs). The start fills the residual with what the
    slices miss of each frame."""
    import torch.nn.functional as F

    cfg = GridConfig(frames=3, height=16, width=24, levels=2, time_base=3, time_growth=1, residual=4)
    torch.manual_seed(0)
    m = LatentGrid(cfg).eval()
    frames = torch.rand(3, 3, 16, 24)
    m.init_from_frames(frames)
    idx = torch.arange(3)
    with torch.no_grad():
        before = m(idx)
        m.residual_latents[0, 1, 2, 3] += 1.0
        after = m(idx)
        m.residual_latents[0, 1, 2, 3] -= 1.0
        started = float(F.mse_loss(before, frames))
        m.residual_latents.zero_()
        assert started < float(F.mse_loss(m(idx), frames))  # the start's residual holds what the one slice misses
    assert torch.equal(after[0], before[0]) and torch.equal(after[2], before[2])
    one = torch.zeros(1, 1, 4, 6, dtype=torch.float64)
    one[0, 0, 2, 3] = 1.0
    footprint = F.interpolate(one, size=(16, 24), mode="bilinear", align_corners=False)[0, 0]
    for c in range(3):
        assert torch.allclose((after[1, c] - before[1, c]).double(), m.init_step * footprint, atol=1e-5)


def test_block_matching_finds_a_shift():
    from inr.models.motion import block_match

    g = torch.Generator().manual_seed(0)
    ref = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 70, 90, generator=g), 3, 1)[0, 0]  # (68, 88) texture
    cur = torch.roll(ref, shifts=(3, -2), dims=(0, 1))  # cur(p) = ref(p - (3, -2))
    d = block_match(ref, cur, cell=8, radius=6)
    inner = d[:, 1:-1, 1:-1]
    assert torch.equal(inner[0], torch.full_like(inner[0], 3.0)) and torch.equal(inner[1], torch.full_like(inner[1], -2.0))


def test_motion_start_follows_a_pan():
    """On a clip that pans one pixel a frame, the analysis start with motion fields
    reconstructs it far better than slices blended in place (which double-expose)."""
    from inr.metrics import psnr

    g = torch.Generator().manual_seed(1)
    texture = torch.nn.functional.interpolate(torch.rand(1, 3, 24, 40, generator=g), size=(48, 80), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    frames = torch.stack([texture[:, 4:36, 8 - t : 72 - t] for t in range(8)])  # (8, 3, 32, 64): content moves right
    scores = {}
    for motion in (0, 8):
        cfg = GridConfig(frames=8, height=32, width=64, levels=3, time_base=8, time_growth=1, motion=motion)
        m = LatentGrid(cfg)
        m.init_from_frames(frames)
        m.quant_mode = "round"
        with torch.no_grad():
            scores[motion] = float(psnr(m(torch.arange(8)).clamp(0, 1), frames))
    assert scores[8] > scores[0] + 5, scores


def test_the_rate_model_scale_codes_sparse_integers_in_the_fewest_bits():
    """The per-level Laplace scale the start is coded with: the best of a float64 grid search
    to within a hundredth of a bit per latent, and far below the mean-magnitude scale it
    replaced where nearly all latents are zero (a lone +-1 cost 15 bits there)."""
    from inr.models.grid import best_log_scale

    g = torch.Generator().manual_seed(0)
    q = torch.where(torch.rand(30_000, generator=g) < 0.97, 0.0, torch.randint(1, 3, (30_000,), generator=g).float())
    q = q * torch.where(torch.rand(30_000, generator=g) < 0.5, -1.0, 1.0)
    x = q.double()

    def ref(log_scale: float) -> float:
        return float(laplace_bits(x, torch.zeros((), dtype=torch.float64), torch.tensor(log_scale, dtype=torch.float64)))

    bits = ref(best_log_scale(q))
    grid = min(ref(v) for v in np.linspace(-4, 8, 601))
    assert bits <= grid + 0.01 * q.numel()
    old = ref(math.log(max(float(q.abs().mean()), 0.05)))
    assert bits < 0.75 * old


def test_a_fit_that_ends_above_its_rate_is_coarsened_to_it(tiny_clip):
    """A fit too short for lambda control (here none at all: the analysis start at four times
    the target) ends at its target under the file's rate model, with the picture still close."""
    from inr.export.grid_codec import RATE_SLACK, RateTarget, settle_rate
    from inr.models import get_spec
    from inr.pipeline import build_model
    from inr.signals import video_signal

    signal = video_signal(tiny_clip)
    _, model = build_model(get_spec("grid"), signal, None, None, 0)
    task = model.rate_task(signal, torch.device("cpu"), RateTarget(bpp=0.5))
    model.start_at_rate(2.0, task.pixels)
    model.quant_mode = "round"
    before = task.evaluate(model, reconstruction=False)
    assert before["latent_bpp_estimate"] > 1.5
    after = settle_rate(model, task, before)
    want = 0.5 - task.overhead_bpp
    assert 0.9 * want <= after["latent_bpp_estimate"] <= RATE_SLACK * want
    assert after["latent_bpp_estimate"] == pytest.approx(task.latent_bits(model) / task.pixels)
    assert after["settled_factor"] > 1.0 and 18.0 < after["psnr"] < before["psnr"]
    # a fit already at its rate is left alone
    assert settle_rate(model, task, after) is after


class _Coarsened:
    """A stand-in model whose latent rate is `rate(factor)`: settle_rate's search alone."""

    def __init__(self, rate):
        self.factor, self.rate, self.passes, self.quant_mode = 1.0, rate, 0, "round"

    def coarsen(self, factor: float) -> None:
        self.factor *= factor


class _RateOnlyTask:
    def __init__(self, bpp: float):
        from inr.export.grid_codec import RateTarget

        self.target, self.overhead_bpp, self.pixels = RateTarget(bpp=bpp), 0.0, 1

    def latent_bits(self, model) -> float:
        model.passes += 1
        return model.rate(model.factor)

    def evaluate(self, model, reconstruction=False, bits=None) -> dict:
        """As GridTask's: a rate pass unless the caller measured this state's bits."""
        bits = self.latent_bits(model) if bits is None else bits
        return {"psnr": 30.0, "latent_bpp_estimate": bits / self.pixels}


@pytest.mark.parametrize("rate, factor", [(lambda f: 0.2 / f**1.5, 2 ** (2 / 3)), (lambda f: 0.05 + 0.3 / f**3, 3 ** (1 / 3))])
def test_rate_settling_finds_the_least_coarsening_that_fits(rate, factor):
    from inr.export.grid_codec import RATE_SLACK, SETTLE_PASSES, settle_rate

    model, task = _Coarsened(rate), _RateOnlyTask(0.1)
    out = settle_rate(model, task, {"latent_bpp_estimate": rate(1.0)})
    assert 0.095 <= out["latent_bpp_estimate"] <= 0.1 * RATE_SLACK
    assert model.factor == pytest.approx(out["settled_factor"]) and model.factor >= factor * 0.97
    assert model.passes <= SETTLE_PASSES


def test_rate_settling_stops_at_its_cap_when_the_rate_does_not_fall():
    """Motion fields and weights are not coarsened: a target they alone exceed must not
    coarsen the latents without end."""
    from inr.export.grid_codec import MAX_COARSEN, settle_rate

    model = _Coarsened(lambda f: 0.2)
    settle_rate(model, _RateOnlyTask(0.1), {"latent_bpp_estimate": 0.2})
    assert model.factor == pytest.approx(MAX_COARSEN) and model.passes <= 2


def test_a_long_fit_is_settled_only_when_far_over_its_rate():
    """Lambda control steers a fit of SETTLE_STEPS or more: a few percent over is left alone
    (settling such fits cost more quality than the rate they gave back), twice the target is
    not (a file that far off breaks the rate contract)."""
    from inr.export.grid_codec import RATE_SLACK, SETTLE_FAR, SETTLE_STEPS, settle_rate

    rate = lambda f: 0.2 / f**1.5  # noqa: E731
    near = {"latent_bpp_estimate": 0.1 * (1 + SETTLE_FAR) / 2}
    model = _Coarsened(rate)
    assert settle_rate(model, _RateOnlyTask(0.1), near, steps=SETTLE_STEPS) is near and model.passes == 0
    far = settle_rate(model, _RateOnlyTask(0.1), {"latent_bpp_estimate": rate(1.0)}, steps=SETTLE_STEPS)
    assert far["latent_bpp_estimate"] <= 0.1 * RATE_SLACK and model.factor > 1.0


def test_small_files_get_smaller_networks():
    """The network is part of the file: the smaller the file, the smaller the network a
    rate target gets (below SMALL_FILE_BYTES and again below TINY_FILE_BYTES)."""
    cfg = GridConfig(frames=1, height=144, width=176, levels=6)
    sizes = []
    for nbytes in (100_000, 10_000, 1_000):
        small = LatentGrid.config_for_rate(cfg, nbytes * 8)
        sizes.append(sum(p.numel() for n, p in LatentGrid(small).named_parameters() if not n.startswith("latents")))
    assert sizes[0] > sizes[1] > sizes[2]
    tiny = LatentGrid.config_for_rate(cfg, 1_000 * 8)
    assert (tiny.hidden, tiny.refine, tiny.context) == (8, 1, 4)


def test_low_rate_images_start_at_half_resolution(tmp_path, small_png, crop64):
    """Below FINEST_IMAGE_BPP an image's finest level is half its resolution (a full-resolution
    one ends up empty there); videos and higher rates keep it. The file says so, renders at
    full size and decodes to what the encoder measured."""
    import json

    from inr.export.compress import decode_bytes
    from inr.metrics import psnr
    from inr.models.grid import FINEST_IMAGE_BPP

    image = GridConfig(frames=1, height=64, width=64, levels=5)
    pixels = 64 * 64
    assert LatentGrid.config_for_rate(image, 0.9 * FINEST_IMAGE_BPP * pixels).finest == 1
    assert LatentGrid.config_for_rate(image, 1.1 * FINEST_IMAGE_BPP * pixels).finest == 0
    video = GridConfig(frames=8, height=64, width=64, levels=5)
    assert LatentGrid.config_for_rate(video, 0.05 * 8 * pixels).finest == 0

    out = tmp_path / "low.inr"
    r = run_cli("encode", str(small_png), "-o", str(out), "--model", "grid", "--steps", "20", "--bpp", str(FINEST_IMAGE_BPP / 2))
    assert r.returncode == 0, r.stderr
    info = run_cli("info", str(out))
    assert "finest=1" in info.stdout and "upsample=1" in info.stdout
    decoded, _, _ = decode_bytes(out.read_bytes(), torch.device("cpu"))
    report = json.loads(out.with_name("low.inr.json").read_text())
    assert psnr(decoded.reshape(64, 64, 3).clamp(0, 1), crop64.float() / 255) == pytest.approx(report["psnr"], abs=0.1)


def test_at_its_rates_the_finest_levels_hold_luma_alone():
    """An image's finest LUMA_ONLY_IMAGE_LEVELS levels hold one grid (luma) instead of three
    at every rate, but its coarsest level keeps chroma however few levels it has; a video's
    finest level does inside LUMA_ONLY_VIDEO_BPP, at other rates none."""
    from inr.models.grid import LUMA_ONLY_IMAGE_LEVELS, LUMA_ONLY_VIDEO_BPP

    lo, hi = LUMA_ONLY_VIDEO_BPP
    for frames, rates in ((1, {0.1: LUMA_ONLY_IMAGE_LEVELS, 1.0: LUMA_ONLY_IMAGE_LEVELS, 3.0: LUMA_ONLY_IMAGE_LEVELS}), (8, {0.9 * lo: 0, 1.1 * lo: 1, 0.9 * hi: 1, 1.1 * hi: 0})):
        cfg = GridConfig(frames=frames, height=64, width=64, levels=5)
        pixels = frames * 64 * 64
        for bpp, luma in rates.items():
            got = LatentGrid.config_for_rate(cfg, bpp * pixels)
            assert got.luma_levels == luma, (frames, bpp)
            assert [z.shape[0] for z in LatentGrid(got).latents] == [1] * luma + [3] * (5 - luma)
    for levels in (1, 2):
        got = LatentGrid.config_for_rate(GridConfig(height=8, width=8, levels=levels), 0.5 * 64)
        assert LatentGrid(got).latents[-1].shape[0] == 3


def test_windowed_fits_train_their_entropy_models_without_the_boost():
    """Frames larger than a training step renders (a 1080p GOP: a dozen steps in its share)
    drop the entropy models' steady / scaled learning rate, which cost a 1080p GOP 2.9 dB;
    frames a step renders whole keep it."""
    from inr.export.grid_codec import GridTask, RateTarget
    from inr.models import get_spec
    from inr.signals import video_signal

    optim = get_spec("grid").optim
    assert optim.steady
    small = GridTask(video_signal(torch.zeros(2, 64, 96, 3, dtype=torch.uint8)), torch.device("cpu"), RateTarget(bpp=0.1))
    assert small.optim_defaults(optim) == optim
    large = GridTask(video_signal(torch.zeros(2, 720, 1280, 3, dtype=torch.uint8)), torch.device("cpu"), RateTarget(bpp=0.1))
    plain = large.optim_defaults(optim)
    assert large.window is not None and plain.steady == ()
    assert not any(prefix in optim.steady for prefix, _ in plain.lr_scales)
    assert dict(plain.lr_scales)["latents."] == dict(optim.lr_scales)["latents."]


def test_video_steps_price_the_rate_every_other_step_at_twice_lambda(tiny_clip, crop64):
    """RATE_EVERY: a small video's steps from RATE_EVERY_MIN_BPP carry the rate term on every
    second step only, weighted by 2 x lambda; the steps between are the distortion alone.
    Images, low targets and fixed lambdas price every step."""
    from inr.export.grid_codec import RATE_EVERY, RATE_EVERY_MIN_BPP, GridTask, RateTarget
    from inr.fit import FitState
    from inr.signals import image_signal, video_signal

    clip = video_signal(tiny_clip[:2, :32, :32])
    task = GridTask(clip, torch.device("cpu"), RateTarget(bpp=0.2))
    assert RATE_EVERY == 2 and task.rate_every == 2
    model = LatentGrid(GridConfig(frames=2, height=32, width=32, levels=3))
    task.attach(FitState(step=90, total_steps=100))  # the straight-through phase: rounded latents, no noise
    with_rate, mse = task.batch_loss(model, torch.Generator().manual_seed(0), 0)
    assert model.quant_mode == "ste"
    bpp = float(model.rate_bits(model.quantized(), torch.tensor([0, 1])).detach()) / task.pixels  # priced as in training
    assert float((with_rate - mse).detach()) == pytest.approx(2 * task.lam * bpp, rel=1e-4)
    assert float(with_rate.detach()) > float(mse.detach()) > 0
    without, mse1 = task.batch_loss(model, torch.Generator().manual_seed(0), 1)
    assert torch.equal(without, mse1)
    for other in (GridTask(clip, torch.device("cpu"), RateTarget(bpp=RATE_EVERY_MIN_BPP / 2)),
                  GridTask(clip, torch.device("cpu"), RateTarget(lam=0.01)),
                  GridTask(image_signal(crop64[:32, :32]), torch.device("cpu"), RateTarget(bpp=0.5))):
        assert other.rate_every == 1


def test_lambda_control_winds_up_no_further_than_its_ceiling_over_a_known_start():
    """While the context model learns the start, the measured rate is far over the target
    and steering kept raising lambda (25x on a tuning clip), squeezing the file under its
    rate. Over a start known to be near the settled slope, lambda stops at LAMBDA_WINDUP
    times it; below the start it stays free (high rates need lower slopes)."""
    from inr.export.grid_codec import LAMBDA_WINDUP, STEER_EVERY, RateTarget, RateTask

    task = RateTask(RateTarget(bpp=0.1), pixels=1000)
    task.start_lambda(0.004)
    for i in range(200):
        task.steer_at(i * STEER_EVERY, lambda: 0.3 * 1000)  # three times the target, throughout
    assert task.lam == pytest.approx(LAMBDA_WINDUP * 0.004)
    for i in range(200):
        task.steer_at(i * STEER_EVERY, lambda: 0.01 * 1000)  # far under
    assert task.lam < 0.004 / LAMBDA_WINDUP
    free = RateTask(RateTarget(bpp=0.1), pixels=1000)  # no known start: only the global bound
    for i in range(200):
        free.steer_at(i * STEER_EVERY, lambda: 0.3 * 1000)
    assert free.lam > LAMBDA_WINDUP * 0.004


def test_rate_settling_survives_latents_that_round_to_nothing():
    """Coarsened far enough, a tiny GOP's latents all round to zero and code in 0 bits: the
    settling's secant took the log of that ratio and the encode died (ZeroDivisionError)."""
    from inr.export.grid_codec import settle_rate

    model = _Coarsened(lambda f: 0.2 if f < 1.5 else 0.0)
    out = settle_rate(model, _RateOnlyTask(0.1), {"latent_bpp_estimate": 0.2})
    assert model.factor >= 1.5 and out["latent_bpp_estimate"] <= 0.1


def test_soft_rounding_matches_a_float64_reference_and_its_limits():
    """Soft rounding (the image noise phase's proxy) against a float64 evaluation of its
    formula; integers are fixed points, a small temperature rounds, a large one is the
    identity."""
    from inr.models.grid import soft_round

    x = torch.tensor([-2.7, -1.5, -0.49, 0.0, 0.2, 0.5, 0.51, 1.0, 3.25, 40.4])
    for t in (0.3, 0.1):
        d = x.double()
        f = torch.floor(d)
        ref = f + 0.5 * torch.tanh((d - f - 0.5) / t) / math.tanh(0.5 / t) + 0.5
        assert torch.allclose(soft_round(x, t).double(), ref, atol=1e-6)
    ints = torch.arange(-5.0, 6.0)
    assert torch.allclose(soft_round(ints, 0.3), ints, atol=1e-6)
    off_ties = x[(x - x.floor() - 0.5).abs() > 0.05]
    assert torch.allclose(soft_round(off_ties, 1e-3), torch.round(off_ties))
    assert torch.allclose(soft_round(x, 1e3), x, atol=1e-3)


def test_kumaraswamy_noise_is_uniform_at_one_and_peaked_above():
    from inr.models.grid import kumaraswamy_noise

    torch.manual_seed(0)
    u = torch.rand(200_000)
    assert torch.allclose(kumaraswamy_noise(u, 1.0), u - 0.5)
    peaked = kumaraswamy_noise(u, 2.0)
    assert float(peaked.min()) >= -0.5 and float(peaked.max()) <= 0.5
    assert abs(float(peaked.mean())) < 0.01
    assert float(peaked.var()) < 0.8 / 12  # narrower than U(-0.5, 0.5)


def test_images_train_under_annealed_soft_rounding_videos_under_uniform_noise(crop64, tiny_clip):
    """The noise phase's proxy follows the signal: an image's latents are soft-rounded around
    Kumaraswamy noise on a schedule that runs through the noise phase (grid.SOFT_ROUND_T); a
    video's get uniform noise; the straight-through phase and the decoder round."""
    from inr.export.grid_codec import GridTask, RateTarget
    from inr.fit import FitState
    from inr.models.grid import IMAGE_NOISE_FRACTION, quantize_latents
    from inr.signals import image_signal, video_signal

    for signal, annealed in ((image_signal(crop64[:32, :32]), True), (video_signal(tiny_clip[:2, :32, :32]), False)):
        task = GridTask(signal, torch.device("cpu"), RateTarget(lam=0.01))
        t = signal.spatial_shape[0] if signal.kind == "video" else 1
        model = LatentGrid(GridConfig(frames=t, height=32, width=32, levels=3))
        for step in (1, 50, 80, 99):
            progress = step / 100
            task.attach(FitState(step=step, total_steps=100))
            task.batch_loss(model, torch.Generator().manual_seed(0), step)
            noise = IMAGE_NOISE_FRACTION if annealed else 0.75
            assert task.target.noise_fraction == noise
            if progress < noise:
                assert model.quant_mode == "noise"
                assert model.quant_anneal == (pytest.approx(progress / noise, abs=0.02) if annealed else None)
            else:
                assert model.quant_mode == "ste"
    z = torch.linspace(-3, 3, 10_001)
    torch.manual_seed(1)
    start = quantize_latents(z, "noise", 0.0) - z
    torch.manual_seed(1)
    end = quantize_latents(z, "noise", 1.0) - z
    assert float(start.abs().max()) <= 1.0 and float(end.abs().max()) <= 1.0
    assert torch.equal(quantize_latents(z, "round", 0.5), torch.round(z))


def test_the_context_network_without_gradients_runs_in_blocks_to_the_same_parameters(monkeypatch):
    """Rate passes without gradients (rate control, a 1080p GOP's evaluations) run the context
    network a block of sites at a time; the result is the whole-matrix evaluation's."""
    from inr.models.grid import ContextModel

    torch.manual_seed(0)
    model = ContextModel(levels=2, width=8, temporal=True)
    for p in model.parameters():
        torch.nn.init.normal_(p)
    monkeypatch.setattr(ContextModel, "HEAD_BLOCK", 64)
    x = torch.randn(model.net[0].in_features, 3 * 64 + 5)
    whole = model.head(x)  # with gradients: one product per layer
    with torch.no_grad():
        blocked = model.head(x)
    assert blocked.shape == (2, x.shape[1])
    torch.testing.assert_close(blocked, whole.detach(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("lam, emptied", [(10.0, True), (1e-9, False)])
def test_an_all_but_empty_finest_level_is_emptied_where_it_does_not_pay(lam, emptied):
    """A finest level of a few scattered latents (1080p GOPs at low rates end like this: 753
    of 12.4M) is emptied when the distortion that adds is worth less than its bits at the
    fit's lambda, and kept when bits are nearly free; an emptied level is constant and its
    file records code nothing for it."""
    from inr.export.grid_codec import EMPTY_LEVEL_FRACTION, GridTask, RateTarget, drop_empty_levels, encode_latents
    from inr.signals import video_signal

    cfg = GridConfig(frames=2, height=32, width=48, levels=3, time_base=1, time_growth=1, context=8)
    model = _random_model(cfg, scale=4.0, seed=4)
    with torch.no_grad():
        sparse = torch.zeros_like(model.latents[0])
        sparse.view(-1)[:: int(20 / EMPTY_LEVEL_FRACTION)] = 4.0  # a twentieth of the share that may be emptied
        model.latents[0].copy_(sparse)
        model.context.net[-1].weight.zero_()  # Laplace parameters: each level's bias alone,
        model.context.net[-1].bias.zero_()
        model.context.level_bias[0, 1] = -2.5  # a confident model of level 0's zeros, as a trained one has
        # the signal is what the model draws, so level 0's few latents are worth something
        frames = (model(torch.arange(2)).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    task = GridTask(video_signal(frames), torch.device("cpu"), RateTarget(lam=lam))
    metrics = {"latent_bpp_estimate": task.latent_bits(model) / task.pixels}
    level0 = model.coded_bits(0)
    out = drop_empty_levels(model, task, metrics)
    assert bool(model.latents[0].any()) != emptied
    if emptied:
        assert out["emptied_levels"] == [0]
        # the file codes no symbol of a constant level: its bits leave the estimate whole
        assert out["latent_bpp_estimate"] == pytest.approx(metrics["latent_bpp_estimate"] - level0 / task.pixels, rel=1e-5)
        assert out["latent_bpp_estimate"] == pytest.approx(task.latent_bits(model) / task.pixels, rel=1e-5)
        _, records = encode_latents(model)
        assert records[0]["min"] == records[0]["max"] == 0
        # an already empty level is passed over, not a stop: the next one is tried
        with torch.no_grad():
            model.latents[1].zero_()
            model.latents[1].view(-1)[:: int(20 / EMPTY_LEVEL_FRACTION)] = 4.0
            model.context.level_bias[1, 1] = -2.5
        again = drop_empty_levels(model, task, {"latent_bpp_estimate": task.latent_bits(model) / task.pixels})
        assert again["emptied_levels"] == [1] and not model.latents[1].any()
    else:
        assert out is metrics
    dense = _random_model(cfg, scale=2.0, seed=4)
    assert drop_empty_levels(dense, task, metrics) is metrics  # a level with content is not even tried
