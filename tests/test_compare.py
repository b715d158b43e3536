"""Baselines, metrics cross-checks, BD-rate known answers (the compare report and `inr
batch` are tested through the command line in test_cli_compare.py and test_cli_batch.py)."""
from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from video.bd import bd_psnr, bd_rate
from video.codecs import encode_baseline
from video.ffmpeg_bin import ffmpeg_exe
from video.media import write_video
from video.quality import clip_quality


# ------------------------------------------------------------------ BD-rate
def test_bd_rate_cubic_matches_published_worked_example():
    """x264 vs x265 worked example (videonerd.website, 'How to compute BD-rate'), computed
    with the VCEG-M33 cubic fit of Anserw/Bjontegaard_metric: BD_RATE(x265, x264) = -12.098 %."""
    r264, q264 = [9.525, 14.27, 19.113, 24.393], [37.73, 39.07, 40.07, 40.95]
    r265, q265 = [8.914, 13.330, 17.880, 22.990], [37.02, 38.37, 39.42, 40.35]
    assert bd_rate(r265, q265, r264, q264, method="cubic") == pytest.approx(-12.098, abs=5e-3)


FAU = (
    [9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851],
    [9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987],
)


def test_bd_pchip_matches_jvet_reference_implementation():
    """FAU-LMS `bjontegaard` reproduces the JCT-VC CTC Excel sheet (PCHIP) to 10 decimals."""
    bj = pytest.importorskip("bjontegaard")
    for data in (FAU, ([9.525, 14.27, 19.113, 24.393], [37.73, 39.07, 40.07, 40.95], [8.914, 13.330, 17.880, 22.990], [37.02, 38.37, 39.42, 40.35])):
        r1, q1, r2, q2 = (np.array(x) for x in data)
        assert bd_rate(r1, q1, r2, q2) == pytest.approx(bj.bd_rate(r1, q1, r2, q2, method="pchip"), abs=1e-6)
        assert bd_psnr(r1, q1, r2, q2) == pytest.approx(bj.bd_psnr(r1, q1, r2, q2, method="pchip"), abs=1e-6)


def test_bd_rate_sanity():
    r, q = [100, 200, 400, 800], [30, 33, 36, 39]
    assert bd_rate(r, q, r, q) == pytest.approx(0, abs=1e-12)
    assert bd_rate(r, q, [x / 2 for x in r], q) == pytest.approx(-50, abs=1e-9)  # half the bits
    assert math.isnan(bd_rate(r, q, r, [50, 51, 52, 53]))  # no PSNR overlap


# ------------------------------------------------------------------ baselines and metrics
@pytest.fixture(scope="module")
def clip_u8(tiny_clip) -> np.ndarray:
    return tiny_clip.numpy()


def test_baselines_give_monotone_rd_points(clip_u8):
    for codec in ("h264", "h265"):
        pts = []
        for crf in (20, 30, 40):
            res = encode_baseline(clip_u8, codec, "medium", crf)
            q = clip_quality(res.decoded, clip_u8, res.decoded_y)
            pts.append((res.bytes, q["psnr"], q["psnr_y"]))
            assert res.decoded.shape == clip_u8.shape
        sizes, psnrs, ys = zip(*pts)
        assert sizes[0] > sizes[1] > sizes[2], (codec, sizes)
        assert psnrs[0] > psnrs[1] > psnrs[2], (codec, psnrs)
        assert ys[0] > ys[1] > ys[2]


def test_unknown_codec_is_a_clear_error(clip_u8):
    from inr.errors import InrError

    with pytest.raises(InrError, match="unknown codec"):
        encode_baseline(clip_u8, "vp9", "medium", 30)


def _ffmpeg_psnr_stats(a: Path, b: Path, pix_fmt: str, tmp: Path) -> list[dict]:
    """Per-frame stats of ffmpeg's own psnr filter, both inputs converted to `pix_fmt` by ffmpeg."""
    stats = tmp / f"stats_{a.stem}_{pix_fmt}.log"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(a), "-i", str(b),
         "-lavfi", f"[0:v]format={pix_fmt}[x];[1:v]format={pix_fmt}[y];[x][y]psnr=stats_file={stats}", "-f", "null", "-"],
        check=True,
    )
    return [{k: float(v) for k, v in re.findall(r"(\w+):([\d.]+|inf)", line)} for line in stats.read_text().splitlines()]


def test_psnr_agrees_with_ffmpeg_psnr_filter(tmp_path, clip_u8):
    stream = tmp_path / "clip.h264"
    res = encode_baseline(clip_u8, "h264", "medium", 32, keep_stream=stream)
    ref = write_video(tmp_path / "ref.mkv", clip_u8, lossless=True)
    dec = write_video(tmp_path / "dec.mkv", res.decoded, lossless=True)
    # INR path: decoded RGB frames, Y planes through ffmpeg's RGB -> YUV 4:2:0 conversion.
    ours = clip_quality(res.decoded, clip_u8)
    rgb = _ffmpeg_psnr_stats(dec, ref, "rgb24", tmp_path)
    yuv = _ffmpeg_psnr_stats(dec, ref, "yuv420p", tmp_path)
    assert len(rgb) == len(yuv) == len(ours["per_frame_psnr"]) == 8
    for mine, theirs in zip(ours["per_frame_psnr"], rgb):
        assert abs(mine - theirs["psnr_avg"]) < 0.05
    for mine, theirs in zip(ours["per_frame_psnr_y"], yuv):
        assert abs(mine - theirs["psnr_y"]) < 0.05
    # Codec path: the stream's own Y planes against the original's, as ffmpeg reads the stream.
    codec = clip_quality(res.decoded, clip_u8, res.decoded_y)
    direct = _ffmpeg_psnr_stats(stream, ref, "yuv420p", tmp_path)
    for mine, theirs in zip(codec["per_frame_psnr_y"], direct):
        assert abs(mine - theirs["psnr_y"]) < 0.05


def test_a_codec_point_streams_in_memory_that_does_not_grow_with_the_clip(tmp_path, synthetic_clip):
    """What `inr compare` does for a codec point on a video: the source fed to the encoder and
    the stream decoded back in chunks of 4 frames, measured chunk by chunk."""
    import tracemalloc

    from video.codecs import decoded_chunks, encode_stream
    from video.media import ReadOptions
    from video.quality import stream_quality
    from video.stream import read_chunks

    def point(frames: int) -> int:
        path = synthetic_clip(tmp_path / f"c{frames}.mkv", frames, "64x48")
        stream = tmp_path / f"c{frames}.h264"

        def source():
            return (c.numpy() for c in read_chunks(path, ReadOptions(), [4] * (frames // 4)))

        tracemalloc.start()
        try:
            encode_stream(source(), (48, 64), "h264", "medium", 30, stream)
            q = stream_quality((d, r, y) for (d, y), r in zip(decoded_chunks(stream, (48, 64), 4), source()))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(q["per_frame_psnr"]) == frames
        return peak

    a, b = point(16), point(96)
    assert b < 1.5 * a + (256 << 10), (a, b)  # 6x the frames, not 6x the memory
