"""`inr fit` and `inr render` on video through the command line: the outputs contract and
one-line refusals of impossible geometry."""
from __future__ import annotations

import json

from ui.cli import main


def test_cli_fit_video_contract(tmp_path, tiny_clip_file):
    out = tmp_path / "v"
    rc = main(["fit", str(tiny_clip_file), "--model", "nerv", "--params", "30k", "--epochs", "3", "--max-frames", "4", "-o", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("psnr", "msssim", "per_frame_psnr", "params", "epochs", "seconds", "decode_fps", "model", "width", "height", "frames"):
        assert key in m, key
    assert (m["width"], m["height"], m["frames"], m["epochs"]) == (96, 64, 4, 3)
    assert len(m["per_frame_psnr"]) == 4
    assert (out / "recon.mp4").stat().st_size > 0
    # HNeRV checkpoints carry their embeddings, so render needs no source video.
    out2 = tmp_path / "h"
    assert main(["fit", str(tiny_clip_file), "--model", "hnerv", "--epochs", "1", "--max-frames", "2", "-o", str(out2)]) == 0
    assert main(["render", str(out2 / "checkpoint"), "-o", str(tmp_path / "h.mp4")]) == 0


def test_cli_video_errors(tmp_path, tiny_clip_file, capsys):
    assert main(["fit", str(tiny_clip_file), "--model", "nerv", "--crop", "500x500", "-o", str(tmp_path / "x")]) == 2
    assert "larger than the frame" in capsys.readouterr().err
    assert main(["fit", str(tiny_clip_file), "--model", "nerv", "--resize", "2x2", "-o", str(tmp_path / "x")]) == 2
    assert "too small" in capsys.readouterr().err
