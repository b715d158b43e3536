"""The options module through the CLI: refusals in one line, fit's weight budget vs encode's file size."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from inr.options import KIB


@pytest.fixture
def small_png(tmp_path, crop64):
    path = tmp_path / "crop.png"
    Image.fromarray(crop64.numpy()).save(path)
    return path


def test_cli_refuses_l1_ssim_for_a_coordinate_model_in_one_line(small_png, tmp_path, capsys):
    from ui.cli import main

    assert main(["fit", str(small_png), "--model", "siren", "--steps", "1", "--loss", "l1_ssim", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "loss 'l1_ssim'" in err and not (tmp_path / "o").exists()


def test_fit_sizes_by_weights_kb_and_keeps_size_kb_for_files(small_png, tmp_path, capsys):
    """`--size-kb` is a file size (encode); fit's weight budget has its own name."""
    from ui.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["fit", str(small_png), "--model", "siren", "--steps", "1", "--size-kb", "2", "-o", str(tmp_path / "a")])
    assert exc.value.code == 2
    out = tmp_path / "b"
    assert main(["fit", str(small_png), "--model", "siren", "--steps", "1", "--weights-kb", "2", "-o", str(out)]) == 0
    params = json.loads((out / "metrics.json").read_text())["params"]
    assert abs(params - 2 * KIB) <= 0.1 * 2 * KIB  # sized to 2 KiB of 8-bit weights, as --params 2048 would be


@pytest.mark.parametrize("flags, amp, channels_last", [([], None, None), (["--amp", "--channels-last"], True, True), (["--no-amp", "--no-channels-last"], False, False)])
def test_speed_flags_force_or_leave_the_devices_default(flags, amp, channels_last):
    """Absent: the device's measured default (None); `--X` / `--no-X` force it either way
    (CUDA's defaults are off, so a large model on a GPU needs the way to turn them on)."""
    from ui.cli import _speed_options, build_parser

    args = build_parser().parse_args(["fit", "x.png", "--model", "nerv", "-o", "o", *flags])
    knobs = _speed_options(args)
    assert (knobs["amp"], knobs["channels_last"]) == (amp, channels_last)
