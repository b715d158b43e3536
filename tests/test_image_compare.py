"""Images are a codec too: Pillow JPEG/WebP/AVIF and x265 intra baselines, size matching,
and `inr compare photo.png` with the same report as for video (issue 14, section 4)."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from inr.errors import InrError
from video import image_codecs as ic
from video.quality import psnr_8bit


@pytest.fixture(scope="module")
def odd_crop(sample_image) -> np.ndarray:
    """A real 63x65 crop: odd sizes exercise x265's 4:2:0 padding."""
    return np.ascontiguousarray(sample_image.numpy()[128:191, 120:185])


@pytest.mark.parametrize("codec", ic.IMAGE_CODECS)
def test_sweep_grows_with_quality_and_decodes_the_file(odd_crop, codec):
    pts = ic.sweep(odd_crop, codec, (5, 30, 60, 95))
    sizes = [p.bytes for p in pts]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0], sizes
    psnr = [psnr_8bit(p.decoded[None], odd_crop[None])[0] for p in pts]
    assert psnr[-1] > psnr[0] + 3, psnr
    for p in pts:
        assert p.decoded.shape == odd_crop.shape
        assert p.bpp() == pytest.approx(p.bytes * 8 / (63 * 65))
        # what decode() makes of the file alone is what the sweep measured
        assert np.array_equal(ic.decode(p.data, odd_crop.shape[:2]), p.decoded)


def _nal_types(stream: bytes, codec: str) -> list[int]:
    return [u[0] & 0x1F if codec == "h264" else (u[0] >> 1) & 0x3F for u in stream.split(b"\x00\x00\x01")[1:]]


def test_x265_intra_stream_carries_no_sei(odd_crop):
    types = _nal_types(ic.encode(odd_crop, ic.X265_INTRA, 50), "h265")
    assert {32, 33, 34} <= set(types)  # VPS, SPS, PPS kept
    assert not set(types) & {39, 40}, types


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_baseline_streams_are_counted_without_sei(tmp_path, tiny_clip, codec):
    """The encoder's own stream carries an SEI log line; the baseline counts and decodes the
    stream without it, and its pictures are exactly those of the encoder's own stream."""
    from video.codecs import CODECS, _run, encode_baseline, strip_sei
    from video.ffmpeg_bin import ffmpeg_exe

    frames = np.ascontiguousarray(tiny_clip.numpy()[:3])
    t, h, w, _ = frames.shape
    lib, fmt = CODECS[codec]
    raw = _run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                "-i", "pipe:", "-c:v", lib, "-preset", "medium", "-crf", "35", "-pix_fmt", "yuv420p", "-f", fmt, "pipe:"], frames.tobytes())
    stream = tmp_path / "s.bin"
    res = encode_baseline(frames, codec, "medium", 35, keep_stream=stream)
    kept = stream.read_bytes()
    sei = {6} if codec == "h264" else {39, 40}
    assert set(_nal_types(raw, codec)) & sei and not set(_nal_types(kept, codec)) & sei
    assert res.bytes == len(kept) == len(strip_sei(raw, codec)) < len(raw)

    def decode(data: bytes) -> np.ndarray:
        rgb = _run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", fmt, "-i", "pipe:", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"], data)
        return np.frombuffer(rgb, np.uint8).reshape(frames.shape)

    assert np.array_equal(decode(raw), res.decoded) and np.array_equal(decode(kept), res.decoded)


@pytest.mark.parametrize("codec", ["jpeg", "webp", "avif"])
def test_match_size_is_the_highest_quality_that_fits(odd_crop, codec):
    target = ic.code(odd_crop, codec, 50).bytes + 1
    m = ic.match_size(odd_crop, codec, target)
    assert m.fits and m.bytes <= target and m.quality >= 50 and m.target_bytes == target
    lo, hi = ic.quality_range(codec)
    if m.quality < hi:
        assert ic.code(odd_crop, codec, m.quality + 1).bytes > target
    assert m.decoded.shape == odd_crop.shape
    tiny = ic.match_size(odd_crop, codec, 10)  # below any header: closest point, flagged
    assert not tiny.fits and tiny.quality == lo and tiny.bytes > 10


def test_codec_errors_are_one_line(odd_crop, monkeypatch):
    with pytest.raises(InrError, match="unknown image codec 'png'"):
        ic.encode(odd_crop, "png", 50)
    with pytest.raises(InrError, match="quality must be in 1..100"):
        ic.encode(odd_crop, "jpeg", 0)
    with pytest.raises(InrError, match=r"\(H, W, 3\) uint8"):
        ic.encode(odd_crop.astype(np.float32), "jpeg", 50)
    with pytest.raises(InrError, match="not a decodable image"):
        ic.decode(b"definitely not an image")
    real = ic.features.check
    monkeypatch.setattr(ic.features, "check", lambda f: False if f == "avif" else real(f))
    with pytest.raises(InrError, match="without AVIF support") as err:
        ic.check_codec("avif")
    assert "\n" not in str(err.value)


def test_bd_table_skips_failed_points_and_is_finite_where_curves_overlap():
    from video.compare import CompareOptions, bd_table

    def pt(method, preset, bpp, psnr, kind):
        return {"method": method, "preset": preset, "bpp": bpp, "psnr": psnr, "kind": kind, "status": "ok"}

    points = [pt("jpeg", "q", b, q, "codec") for b, q in ((0.2, 28), (0.4, 32), (0.8, 36), (1.6, 40))]
    points += [pt("webp", "m6", b, q, "codec") for b, q in ((0.1, 20), (0.15, 21))]  # below the INR's range
    points += [pt("siren", "", b, q, "inr") for b, q in ((0.3, 29), (0.6, 33), (1.2, 37))]
    points.append({"method": "siren", "preset": "", "setting": 0.01, "kind": "inr", "status": "failed", "error": "cannot be met"})
    table = bd_table(points, CompareOptions(models=["siren"], bpps=[0.01, 0.3]))
    assert math.isfinite(table["siren"]["jpeg"]["q"]) and table["siren"]["jpeg"]["q"] > 0  # more bits for equal PSNR
    assert table["siren"]["webp"]["m6"] is None


def _photo_file(tmp_path, sample_image):
    path = tmp_path / "photo.png"
    Image.fromarray(sample_image.numpy()[128:, 128:]).save(path)  # the detailed 128x128 quarter
    return path


@pytest.fixture
def one_thread():
    """Two torch threads on two cores shared with other jobs thrash (measured 10x slower
    under load); this test checks the report, not speed, so it fits on one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_compare_an_image(tmp_path, sample_image, one_thread):
    from ui.cli import main

    src = _photo_file(tmp_path, sample_image)
    out = tmp_path / "report"
    qualities = [1, 10, 30, 60, 95]
    args = ["compare", str(src), "--models", "siren", "--bpp", "0.01,2,4", "--steps", "20",
            "--quality", ",".join(map(str, qualities)), "-o", str(out)]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["kind"] == "image" and res["frames"] == 1 and (res["width"], res["height"]) == (128, 128)
    assert {p["method"] for p in res["points"]} == {"siren", "jpeg", "webp", "avif"}  # an image's default codecs

    failed = [p for p in res["points"] if p["status"] == "failed"]
    assert [(p["method"], p["setting"]) for p in failed] == [("siren", 0.01)] and "cannot be met" in failed[0]["error"]
    made = [p for p in res["points"] if p["status"] == "ok"]
    assert sum(p["method"] == "siren" for p in made) == 2  # the other targets went on

    original = np.asarray(Image.open(src).convert("RGB"))
    for codec in ("jpeg", "webp", "avif"):
        pts = sorted((p for p in made if p["method"] == codec), key=lambda p: p["setting"])
        assert [p["setting"] for p in pts] == qualities
        sizes = [p["bytes"] for p in pts]
        assert sizes == sorted(sizes), (codec, sizes)
    for p in made:
        assert p["bpp"] == pytest.approx(p["bytes"] * 8 / (128 * 128))
        coded, png = out / p["file"], out / p["decoded_png"]
        assert coded.stat().st_size == p["bytes"]
        decoded = np.asarray(Image.open(png).convert("RGB"))  # decoded back to PNG, and that PNG is what was scored
        assert psnr_8bit(decoded[None], original[None])[0] == pytest.approx(p["psnr"], abs=1e-6)
        if p["kind"] == "codec":
            assert np.array_equal(ic.decode(coded.read_bytes()), decoded)

    for codec, presets in res["bd_rate"]["siren"].items():  # finite exactly where the PSNR ranges overlap
        (preset, v), = presets.items()
        inr = [p["psnr"] for p in made if p["method"] == "siren"]
        ref = [p["psnr"] for p in made if p["method"] == codec]
        overlap = min(max(inr), max(ref)) > max(min(inr), min(ref))
        assert (v is not None and math.isfinite(v)) == overlap, (codec, v)
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res["points"]) and [r["status"] for r in rows].count("failed") == 1
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 2 and "INR vs image codecs" in page and "could not be made" in page
    assert "data:image/png;base64," in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize(
    ("media", "extra", "message"),
    [
        ("image", ["--codecs", "jpeg,h264"], "'h264' is a video codec"),
        ("image", ["--codecs", "jpg"], "unknown image codec 'jpg'"),
        ("image", ["--models", "nerv"], "the input is an image, which model 'nerv' does not handle"),
        ("image", ["--crf", "30"], "--crf and --presets are for video codecs"),
        ("video", ["--codecs", "h264,webp"], "'webp' is an image codec"),
        ("video", ["--quality", "50"], "--quality is for image codecs"),
    ],
)
def test_compare_refuses_codecs_of_the_other_kind(tmp_path, sample_image, tiny_clip_file, capsys, media, extra, message):
    from ui.cli import main

    src = _photo_file(tmp_path, sample_image) if media == "image" else tiny_clip_file
    models = [] if "--models" in extra else ["--models", "siren" if media == "image" else "nerv"]
    assert main(["compare", str(src), *models, "--bpp", "1", "--steps", "1", *extra, "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
