"""Images are a codec too: Pillow JPEG/WebP/AVIF and x265 intra baselines, size matching
and BD tables (issue 14, section 4); `inr compare photo.png` itself is tested through the
command line in test_cli_compare.py."""
from __future__ import annotations

import math

import numpy as np
import pytest

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
