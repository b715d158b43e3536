"""`inr compare` through the command line: the video report and its point cache, an
image's report against JPEG/WebP/AVIF, and refusals of codecs of the other kind."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from ui.cli import main
from video import image_codecs as ic
from video.quality import psnr_8bit


def computed(printed: str) -> list[str]:
    """The points a run made rather than read from its cache: compare logs 'POINT ...' as
    it starts each one it has to compute."""
    return [line for line in printed.splitlines() if line.endswith(" ...")]


def test_compare_report(tmp_path, tiny_clip_file, capsys):
    out = tmp_path / "report"
    # 0.05 bpp is below the smallest NeRV (issue 14): that point fails, the report goes on.
    args = ["compare", str(tiny_clip_file), "--models", "nerv", "--bpp", "0.05,6,10", "--codecs", "h264,h265", "--presets", "medium",
            "--crf", "14,20,26,32,38", "--epochs", "10", "--max-frames", "4", "-o", str(out)]
    assert main(args) == 0
    assert len(computed(capsys.readouterr().out)) == 3 + 2 * 5  # every point was made
    res = json.loads((out / "results.json").read_text())
    keys = {"method", "preset", "setting", "bytes", "bpp", "psnr", "psnr_y", "msssim", "encode_seconds", "decode_fps"}
    assert len(res["points"]) == 3 + 2 * 5
    failed = [p for p in res["points"] if p["status"] == "failed"]
    assert [(p["method"], p["setting"]) for p in failed] == [("nerv", 0.05)] and res["failed"] == 1
    assert "cannot be met" in failed[0]["error"] and "bytes" not in failed[0]
    made = [p for p in res["points"] if p["status"] == "ok"]
    for p in made:
        assert keys <= set(p)
        assert p["bpp"] == pytest.approx(p["bytes"] * 8 / (4 * 64 * 96))
    for p in (p for p in made if p["method"] == "nerv"):
        assert abs(p["bpp"] - p["setting"]) <= 0.1 * p["setting"]
    assert set(res["bd_rate"]["nerv"]) == {"h264", "h265"} and "medium" in res["bd_rate"]["nerv"]["h264"]
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res["points"])
    assert [r["status"] for r in rows].count("failed") == 1 and "cannot be met" in rows[0]["error"]
    page = (out / "report.html").read_text()
    assert page.count("<svg") >= 3 and "<table>" in page and "data:image/png;base64," in page
    assert "1 point(s) could not be made" in page and "class='failed'" in page
    assert "BD-rate" in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    # Same arguments again: every point that was made comes from the cache; only the failed
    # one (never cached) is tried again.
    assert main(args) == 0
    assert computed(capsys.readouterr().out) == ["nerv @ 0.05 bpp ..."]
    assert json.loads((out / "results.json").read_text())["points"] == res["points"]


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
        ("image", ["--models", "nerv"], "which model 'nerv' does not handle"),
        ("image", ["--crf", "30"], "--crf and --presets are for video codecs"),
        ("video", ["--codecs", "h264,webp"], "'webp' is an image codec"),
        ("video", ["--quality", "50"], "--quality is for image codecs"),
    ],
)
def test_compare_refuses_codecs_of_the_other_kind(tmp_path, sample_image, tiny_clip_file, capsys, media, extra, message):
    src = _photo_file(tmp_path, sample_image) if media == "image" else tiny_clip_file
    models = [] if "--models" in extra else ["--models", "siren" if media == "image" else "nerv"]
    assert main(["compare", str(src), *models, "--bpp", "1", "--steps", "1", *extra, "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("gops", [1, 2])
def test_compare_on_a_frame_range_streams_to_the_whole_clip_numbers(tmp_path, tiny_clip_file, monkeypatch, capsys, gops):
    """`--frames 2:8`, measured chunk by chunk (two frames a chunk here) and, for the INR, GOP
    by GOP: the report's numbers are those of the range held whole and measured at once."""
    import torch

    from inr.export import gop as gopfile
    from inr.export.compress import ExportOptions, decode_bytes, encode_to_bpp
    from inr.options import fit_options
    from video import compare, gop_plan
    from video.codecs import encode_baseline
    from video.fitting import load_signal
    from video.media import ReadOptions, read_media, to_uint8
    from video.quality import clip_quality

    monkeypatch.setattr(compare, "CHUNK_BYTES", 2 * 64 * 96 * 3)
    if gops == 2:
        monkeypatch.setattr(gop_plan, "MAX_DEFAULT_GOP", 3)  # 6 frames -> 2 GOPs without a long clip
    out = tmp_path / "report"
    args = ["compare", str(tiny_clip_file), "--frames", "2:8", "--models", "siren", "--bpp", "0.5", "--codecs", "h264", "--presets", "medium",
            "--crf", "20,30", "--steps", "5", "-o", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    res = json.loads((out / "results.json").read_text())
    assert res["frames"] == 6 and [p["status"] for p in res["points"]] == ["ok"] * 3
    read = ReadOptions(start=2, max_frames=6)
    signal, _ = load_signal(tiny_clip_file, read)
    whole = read_media(tiny_clip_file, read)[0].numpy()
    for p in (p for p in res["points"] if p["method"] == "h264"):
        held = encode_baseline(whole, "h264", "medium", p["setting"])
        q = clip_quality(held.decoded, whole, held.decoded_y)
        assert (p["bytes"], p["psnr"], p["psnr_y"], p["msssim"], p["per_frame_psnr"]) == (held.bytes, q["psnr"], q["psnr_y"], q["msssim"], q["per_frame_psnr"])
    inr = next(p for p in res["points"] if p["method"] == "siren")
    file = out / inr["file"]
    index = gopfile.open_index(file)
    assert len(index.gops) == gops and inr.get("gops", 1) == gops
    decoded = torch.cat(list(gopfile.decode_range(file, 0, 6, torch.device("cpu"))))
    q = clip_quality(to_uint8(decoded), whole)
    assert (inr["psnr"], inr["psnr_y"], inr["per_frame_psnr"]) == (q["psnr"], q["psnr_y"], q["per_frame_psnr"])
    # GOP means weighted by frames (a wrong weighting is off by percents); per-frame MS-SSIM is
    # float32 convolutions, whose last bits may follow the batch's size (one GOP or the range)
    assert inr["msssim"] == pytest.approx(q["msssim"], rel=1e-6)
    assert inr["bpp"] == pytest.approx(file.stat().st_size * 8 / (6 * 64 * 96))
    if gops == 1:  # the same file the range held whole gives today (rate control and all)
        opts = fit_options("siren", "video", steps=5, seed=0, schedule="fast")
        enc, _ = encode_to_bpp(signal, opts, ExportOptions(bits=8), 0.5, torch.device("cpu"))
        assert enc.data == file.read_bytes()
        assert torch.equal(decode_bytes(enc.data, torch.device("cpu"))[0], decoded)
