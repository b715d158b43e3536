"""The SHACIRA family: hash-grid latents entropy-coded in section HLAT, the rate the loss sees,
and the file round trip through the CLI for an image and a video."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from inr.bitstream import BitstreamError
from inr.export.shacira_codec import decode_hash_latents, encode_hash_latents
from inr.models.shacira import ShaciraConfig, ShaciraMLP
from tests.test_cli import run_cli

SMALL = {"n_levels": 4, "n_features": 2, "base_resolution": 4, "hidden": 8, "layers": 1}


def _random_model(cfg: ShaciraConfig, scale: float, seed: int = 0) -> ShaciraMLP:
    """Latents drawn from a Laplace of `scale`, rounded; a rate model of that scale with
    random means."""
    torch.manual_seed(seed)
    m = ShaciraMLP(cfg, backend="torch")
    with torch.no_grad():
        m.latents.copy_(torch.round(torch.distributions.Laplace(0.0, scale).sample(m.latents.shape)))
        m.rate_model[..., 0].uniform_(-0.5, 0.5)
        m.rate_model[..., 1] = math.log(scale)
    return m.eval()


@pytest.mark.parametrize("in_dim", [2, 3])
def test_hash_latents_round_trip_bit_exactly(in_dim):
    cfg = ShaciraConfig(in_dim=in_dim, table_size=2**9, max_resolution=24, **SMALL)
    enc = _random_model(cfg, scale=3.0)
    with torch.no_grad():
        enc.latents[enc.level_slices()[1]] = 5.0  # a constant level codes no symbols
    payload, records = encode_hash_latents(enc)
    assert records[1]["min"] == records[1]["max"] == 5
    dec = ShaciraMLP(cfg, backend="torch")
    dec.load_state_dict(enc.state_dict())
    with torch.no_grad():
        dec.latents.fill_(99.0)
    decode_hash_latents(dec, payload, records)
    assert torch.equal(dec.latents, enc.latents)


@pytest.mark.parametrize("in_dim,scale", [(2, 2.0), (3, 0.7)])
def test_rate_estimate_is_the_coded_size(in_dim, scale):
    cfg = ShaciraConfig(in_dim=in_dim, table_size=2**12, max_resolution=128, **SMALL)
    m = _random_model(cfg, scale=scale, seed=1)
    payload, _ = encode_hash_latents(m)
    with torch.no_grad():
        estimate = float(m.rate_bits(m.latents))
    assert len(payload) * 8 == pytest.approx(estimate, rel=0.03)


def test_decoded_table_is_the_linear_decoder_applied_per_level():
    """Float64 reference: level l's features are z W_l + b_l, and a lookup of the decoded
    table equals the decoder applied to a lookup of the latents (interpolation is linear)."""
    cfg = ShaciraConfig(in_dim=2, table_size=2**8, max_resolution=32, **SMALL)
    m = _random_model(cfg, scale=2.0).double()
    with torch.no_grad():
        m.decoder_weight.normal_()
        m.decoder_bias.normal_()
        table = m.decoded_table(m.latents)
        x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
        feats = m.encoding.lookup(x, table).reshape(50, cfg.n_levels, cfg.n_features)
        raw = m.encoding.lookup(x, m.latents).reshape(50, cfg.n_levels, cfg.n_features)
    for l, s in enumerate(m.level_slices()):
        ref = m.latents[s] @ m.decoder_weight[l] + m.decoder_bias[l]
        assert torch.allclose(table[s], ref, rtol=0, atol=1e-12)
        assert torch.allclose(feats[:, l], raw[:, l] @ m.decoder_weight[l] + m.decoder_bias[l], atol=1e-10)


def test_corrupt_hash_latents_are_a_bitstream_error():
    cfg = ShaciraConfig(in_dim=2, table_size=2**8, max_resolution=32, **SMALL)
    m = _random_model(cfg, scale=2.0)
    payload, records = encode_hash_latents(m)
    with pytest.raises(BitstreamError, match="32-bit words"):
        decode_hash_latents(m, payload[:-2], records)
    with pytest.raises(BitstreamError, match="unused data|decoding failed"):
        decode_hash_latents(m, payload + b"\x01\x00\x00\x00", records)
    bad = [dict(r) for r in records]
    bad[0]["shape"] = [1, 2]
    with pytest.raises(BitstreamError, match="shape"):
        decode_hash_latents(m, payload, bad)


# ------------------------------------------------------------------ through the CLI
def _psnr_8bit(decoded: np.ndarray, original: np.ndarray) -> float:
    """Mean per-frame PSNR of uint8 (T, H, W, C) clips, as the encoder's report measures it."""
    from inr.metrics import per_frame_psnr

    a, b = (torch.tensor(v, dtype=torch.float32) / 255 for v in (decoded, original))
    return float(np.mean(per_frame_psnr(a, b)))


@pytest.fixture(scope="module")
def media(tmp_path_factory, crop64, tiny_clip):
    """A 32x32 image and a 4x16x16 clip, written losslessly."""
    from video.media import write_video

    out = tmp_path_factory.mktemp("shacira")
    image = crop64[:32, :32].numpy()
    Image.fromarray(image).save(out / "img.png")
    clip = tiny_clip[:4, 20:36, 40:56]
    write_video(out / "clip.mkv", clip, fps=25.0, lossless=True)
    return out, image, clip.numpy()


@pytest.fixture(scope="module")
def encoded(media):
    out, _, _ = media
    runs = {
        name: run_cli("encode", str(out / src), "-o", str(out / f"{name}.inr"), "--model", "shacira", "--bpp", bpp, "--steps", "40")
        for name, src, bpp in (("img", "img.png", "4"), ("clip", "clip.mkv", "3"))
    }
    return out, runs


@pytest.mark.parametrize("name", ["img", "clip"])
def test_cli_round_trip_decodes_to_the_reported_psnr(media, encoded, name):
    from video.media import ReadOptions, read_media

    out, image, clip = media
    out, runs = encoded
    assert runs[name].returncode == 0, runs[name].stderr
    report = json.loads((out / f"{name}.inr.json").read_text())
    assert report["model"] == "shacira" and report["rate_control"]["attempts"][0]["bytes"] == report["bytes"]
    if name == "img":
        assert run_cli("decode", str(out / "img.inr"), "-o", str(out / "img_dec.png")).returncode == 0
        decoded, original = np.asarray(Image.open(out / "img_dec.png"))[None], image[None]
    else:
        r = run_cli("decode", str(out / "clip.inr"), "-o", str(out / "clip_dec.mkv"), "--lossless")
        assert r.returncode == 0, r.stderr
        decoded, original = read_media(out / "clip_dec.mkv", ReadOptions())[0].numpy(), clip
    assert decoded.shape == original.shape
    assert _psnr_8bit(decoded, original) == pytest.approx(report["psnr"], abs=1e-6)
    info = run_cli("info", str(out / f"{name}.inr"), "--json")
    assert info.returncode == 0, info.stderr
    parsed = json.loads(info.stdout)
    assert parsed["accounted"] == report["bytes"] and parsed["breakdown"]["section:HLAT"] > 0
    assert len(parsed["header"]["hash_latents"]) == parsed["header"]["config"]["n_levels"]


@pytest.mark.parametrize("args, message", [(["--lambda", "0"], "positive"), (["--lambda", "-1"], "positive"), (["--bpp", "0"], "positive")])
def test_bad_rate_arguments_exit_2(media, tmp_path, args, message):
    out, _, _ = media
    r = run_cli("encode", str(out / "img.png"), "-o", str(tmp_path / "x.inr"), "--model", "shacira", "--steps", "5", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.inr").exists()


def test_lambda_trades_rate_for_distortion(crop64):
    """A larger lambda codes fewer latent bits (one fit each, no bpp target)."""
    from inr.export.compress import ExportOptions, encode_signal
    from inr.fit import FitConfig
    from inr.pipeline import FitOptions
    from inr.signals import image_signal

    signal = image_signal(crop64[:32, :32])
    opts = FitOptions(model="shacira", overrides={"n_levels": 6, "hidden": 16}, fit=FitConfig(steps=60))
    rate = {lam: encode_signal(signal, opts, ExportOptions(lam=lam), torch.device("cpu")).float_metrics["latent_bpp_estimate"] for lam in (1e-4, 1e-1)}
    assert rate[1e-1] < rate[1e-4], rate
