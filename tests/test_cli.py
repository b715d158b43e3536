"""The `inr` command through its public interface: outputs, exit codes, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import SAMPLE_IMAGE
from ui.cli import main

SMALL_SIREN = ["--model", "siren", "--steps", "30"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess (tracebacks would show on stderr)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def small_png(tmp_path_factory, crop64) -> Path:
    path = tmp_path_factory.mktemp("img") / "crop.png"
    Image.fromarray(crop64.numpy()).save(path)
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, small_png) -> Path:
    out = tmp_path_factory.mktemp("fit") / "out"
    assert main(["fit", str(small_png), *SMALL_SIREN, "-o", str(out)]) == 0
    return out


def test_fit_writes_contract_outputs(fitted):
    assert (fitted / "recon.png").is_file()
    metrics = json.loads((fitted / "metrics.json").read_text())
    for key in ("psnr", "ssim", "params", "steps", "seconds", "model"):
        assert key in metrics
    assert metrics["model"] == "siren" and metrics["steps"] == 30
    assert (fitted / "checkpoint" / "config.json").is_file()
    assert (fitted / "checkpoint" / "model.safetensors").is_file()
    assert Image.open(fitted / "recon.png").size == (64, 64)


def test_render_scale_two(fitted, tmp_path):
    out = tmp_path / "big.png"
    assert main(["render", str(fitted / "checkpoint"), "--scale", "2", "-o", str(out)]) == 0
    assert Image.open(out).size == (128, 128)


def test_resume_continues_step_count(small_png, tmp_path):
    out = tmp_path / "r"
    assert main(["fit", str(small_png), "--model", "ffn", "--steps", "10", "-o", str(out)]) == 0
    assert main(["fit", str(small_png), "--model", "ffn", "--steps", "25", "--resume", "-o", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 25


def test_models_lists_descriptions(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("siren", "poly", "ffn", "hashgrid", "nerv", "nervpp", "hnerv"):
        assert name in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["fit", "missing.png", "--model", "siren", "-o", "o"], "no such file"),
        (["fit", "{text}", "--model", "siren", "-o", "o"], "not a readable"),
        (["fit", str(SAMPLE_IMAGE), "--model", "nope", "-o", "o"], "unknown model"),
        (["fit", str(SAMPLE_IMAGE), "--model", "siren", "--steps", "-5", "-o", "o"], "positive integer"),
        (["fit", str(SAMPLE_IMAGE), "--model", "siren", "--params", "lots", "-o", "o"], "parameter budget"),
        (["fit", str(SAMPLE_IMAGE), "--model", "nerv", "-o", "o"], "which model 'nerv' does not handle"),
        (["render", "nowhere", "-o", "x.png"], "not a checkpoint"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, args, needle):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    args = [a.replace("{text}", str(text)) for a in args]
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
