"""`inr encode`, `decode` and `info` through the command line: the report and the file it
describes, decoding to frames, images and video, and damaged or hostile files refused with
one line and exit code 2."""
from __future__ import annotations

import json

import pytest

from inr.export.hostile import corpus
from ui.cli import main


def test_image_encode_and_cli(tmp_path, crop64):
    from PIL import Image

    png = tmp_path / "c.png"
    Image.fromarray(crop64.numpy()).save(png)
    out = tmp_path / "c.inr"
    assert main(["encode", str(png), "-o", str(out), "--model", "hashgrid", "--params", "8k", "--steps", "60"]) == 0
    rep = json.loads((tmp_path / "c.inr.json").read_text())
    assert rep["bytes"] == out.stat().st_size
    assert abs(rep["bpp"] - rep["bytes"] * 8 / (64 * 64)) < 1e-9
    assert rep["psnr"] > 20
    assert main(["decode", str(out), "-o", str(tmp_path / "d.png")]) == 0
    assert Image.open(tmp_path / "d.png").size == (64, 64)


def test_video_cli_encode_decode_info(tmp_path, tiny_clip_file, capsys):
    out = tmp_path / "v.inr"
    rc = main(["encode", str(tiny_clip_file), "-o", str(out), "--model", "nerv", "--params", "30k", "--epochs", "5", "--max-frames", "4", "--prune", "0.2", "--bits", "6"])
    assert rc == 0
    rep = json.loads((tmp_path / "v.inr.json").read_text())
    for key in ("bytes", "bpp", "psnr", "msssim", "encode_seconds", "decode_seconds", "decode_fps"):
        assert key in rep
    assert rep["bytes"] == out.stat().st_size and rep["bpp"] == pytest.approx(rep["bytes"] * 8 / (4 * 64 * 96))
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["accounted"] == rep["bytes"] and any(t["pruned"] for t in parsed["header"]["tensors"])
    assert main(["info", str(out)]) == 0
    assert "section:WGTS" in capsys.readouterr().out
    assert main(["decode", str(out), "-o", str(tmp_path / "frames") + "/"]) == 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 4
    assert main(["decode", str(out), "-o", str(tmp_path / "v.mkv"), "--lossless"]) == 0


def test_corrupt_file_cli_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.inr"
    bad.write_bytes(b"INRC" + bytes(40))
    assert main(["info", str(bad)]) == 2
    assert main(["decode", str(bad), "-o", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("label", ["tensor-name-list", "tensors-int", "signal-string", "siren-layers-2^32", "siren-2^31-pixels", "qprm-short"])
def test_cli_decode_of_a_hostile_file_is_one_line_and_exit_2(siren_file, tmp_path, capsys, label):
    data, _ = corpus(siren_file, "siren")[label]
    path = tmp_path / "hostile.inr"
    path.write_bytes(data)
    rc = main(["decode", str(path), "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("inr decode: error:"), err


@pytest.mark.parametrize("label", ["tensor-name-list", "tensor-entry-int", "tensors-int", "signal-string", "tensor-coder-int"])
def test_cli_info_of_a_hostile_file_is_one_line_and_exit_2(siren_file, tmp_path, capsys, label):
    data, _ = corpus(siren_file, "siren")[label]
    path = tmp_path / "hostile.inr"
    path.write_bytes(data)
    rc = main(["info", str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("inr info: error:"), err
