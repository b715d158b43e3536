"""`inr encode/decode/info` on long videos in groups of frames (issue 11): the CLI side of
tests/test_gop.py (round trip, frame ranges, one-line refusals)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inr.export import gop as gopfile
from ui.cli import main
from video.media import load_image

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def encoded(clip12, tmp_path_factory) -> Path:
    """The 12-frame clip in 3 GOPs of 4 frames (the default family, warm-started)."""
    out = tmp_path_factory.mktemp("enc") / "clip.inr"
    assert main(["-q", "encode", str(clip12), "-o", str(out), "--gop", "4", "--steps", "4", "--params", "20k"]) == 0
    return out


def _pngs(folder: Path) -> np.ndarray:
    return np.stack([load_image(p).numpy() for p in sorted(folder.glob("frame_*.png"))])


def test_three_gops_round_trip(encoded, tmp_path, capsys):
    index = gopfile.open_index(encoded)
    assert index.version == 2 and [g.frames for g in index.gops] == [4, 4, 4]
    report = json.loads(Path(str(encoded) + ".json").read_text())
    assert len(report["gops"]) == 3 and report["frames"] == 12 and report["bytes"] == encoded.stat().st_size
    assert len(report["per_frame_psnr"]) == 12 and report["psnr"] > 8
    assert not (encoded.parent / f".{encoded.name}.gops").exists()  # the work dir is gone once complete
    assert main(["decode", str(encoded), "-o", str(tmp_path / "all/")]) == 0
    frames = _pngs(tmp_path / "all")
    assert frames.shape == (12, 32, 48, 3)
    assert main(["info", str(encoded)]) == 0
    out = capsys.readouterr().out
    assert "3 GOP(s)" in out and "frames      8-11" in out


def test_frame_range_equals_the_same_frames_of_a_full_decode(encoded, tmp_path, capsys):
    assert main(["decode", str(encoded), "-o", str(tmp_path / "all/")]) == 0
    assert main(["decode", str(encoded), "-o", str(tmp_path / "part/"), "--frames", "5:9"]) == 0
    assert "2 of 3 GOP(s) decoded" in capsys.readouterr().out
    np.testing.assert_array_equal(_pngs(tmp_path / "part"), _pngs(tmp_path / "all")[5:9])


def test_only_the_needed_gops_are_decoded(encoded, monkeypatch):
    calls = []
    real = gopfile.codec.decode_model
    monkeypatch.setattr(gopfile.codec, "decode_model", lambda data: calls.append(len(data)) or real(data))
    frames = torch.cat(list(gopfile.decode_range(encoded, 1, 3, CPU)))
    assert frames.shape[0] == 2 and len(calls) == 1


@pytest.mark.parametrize("text", ["9:5", "0:13", "a:b", "1:2:3", "-1:2"])
def test_bad_frame_range_is_one_line_and_exit_2(encoded, tmp_path, capsys, text):
    assert main(["decode", str(encoded), "-o", str(tmp_path / "x.mkv"), f"--frames={text}"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_clip_that_fits_one_gop_keeps_the_version_1_file(clip12, tmp_path):
    out = tmp_path / "one.inr"
    assert main(["-q", "encode", str(clip12), "-o", str(out), "--steps", "2", "--params", "20k", "--max-frames", "4"]) == 0
    assert out.read_bytes()[4] == 1


def test_admission_refuses_what_cannot_fit_even_one_frame_at_a_time(clip12, tmp_path, capsys):
    out = tmp_path / "big.inr"
    assert main(["encode", str(clip12), "-o", str(out), "--resize", "16000x16000", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "even one at a time" in err
    assert not out.exists()


def test_cli_decode_of_a_hostile_gop_file_is_one_line_and_exit_2(gop_file, tmp_path, capsys):
    from inr.export.hostile import gop_corpus

    data, _ = gop_corpus(gop_file)["gop-start-gap"]
    path = tmp_path / "bad.inr"
    path.write_bytes(data)
    for argv in (["decode", str(path), "-o", str(tmp_path / "out.mkv")], ["info", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "GOP" in err
    assert not (tmp_path / "out.mkv").exists()


def test_cold_start_of_rate_aware_gops_is_said_only_where_there_are_gops(clip12, tmp_path, caplog):
    """`grid` GOPs start cold; a clip that fits one GOP has none to start, and every point of
    `make demo`'s report said so anyway."""
    import logging

    said = lambda: any("start from their own signal" in r.getMessage() for r in caplog.records)  # noqa: E731
    with caplog.at_level(logging.INFO, logger="inr"):
        assert main(["encode", str(clip12), "-o", str(tmp_path / "one.inr"), "--model", "grid", "--steps", "2", "--bpp", "0.5", "--max-frames", "4"]) == 0
        assert not said()
        assert main(["encode", str(clip12), "-o", str(tmp_path / "two.inr"), "--model", "grid", "--steps", "2", "--bpp", "0.5", "--max-frames", "4", "--gop", "2"]) == 0
        assert said()
