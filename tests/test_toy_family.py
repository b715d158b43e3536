"""A family registered here, in the test file alone, goes through the whole product through
the CLI: fit, render, encode, info, decode. Nothing outside this file knows about it: that is
the proof that the representation interface (inr.models.representation) is the only thing
the rest of the code asks a family."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inr.models import FrameRepresentation, ModelSpec, OptimDefaults, register
from inr.models.registry import Schedule, unregister
from inr.metrics import psnr
from ui.cli import main
from video.media import ReadOptions, read_media


@dataclass
class ToyConfig:
    """A per-frame RGB thumbnail of `cells` x `cells`, upsampled bilinearly to the frame."""

    frames: int = 1
    height: int = 8
    width: int = 8
    cells: int = 4

    LIMITS = {"frames": (1, 64), "height": (1, 4096), "width": (1, 4096), "cells": (1, 64)}


class Thumbnails(FrameRepresentation):
    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.config = cfg
        self.thumbs = nn.Parameter(torch.full((cfg.frames, 3, cfg.cells, cfg.cells), 0.5))

    def forward(self, idx: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        return F.interpolate(self.thumbs[idx], size=(self.config.height, self.config.width), mode="bilinear", align_corners=False)


def _adapt(cfg: ToyConfig, signal) -> ToyConfig:
    t, h, w = signal.spatial_shape
    return dataclasses.replace(cfg, frames=t, height=h, width=w)


@pytest.fixture
def toy_family():
    spec = ModelSpec(
        name="toy-thumbs",
        config_cls=ToyConfig,
        model_cls=Thumbnails,
        signals=("video",),
        description="test-only family: bilinear thumbnails",
        optim=OptimDefaults(lr=0.05, fast=Schedule(decay="constant", warmup=0.0), paper=Schedule(decay="constant", warmup=0.0)),
        adapt=_adapt,
        width_field="cells",
    )
    register(spec)
    yield spec
    unregister(spec.name)


def test_a_family_defined_in_a_test_file_runs_through_the_cli(toy_family, tiny_clip, tiny_clip_file, tmp_path, capsys):
    fitted = tmp_path / "fit"
    assert main(["fit", str(tiny_clip_file), "--model", "toy-thumbs", "--steps", "60", "-o", str(fitted)]) == 0
    metrics = json.loads((fitted / "metrics.json").read_text())
    assert metrics["model"] == "toy-thumbs" and metrics["psnr"] > 14  # a flat 0.5 grey scores about 10 dB on this clip
    assert main(["render", str(fitted / "checkpoint"), "-o", str(tmp_path / "render.mkv")]) == 0
    assert main(["render", str(fitted / "checkpoint"), "--scale", "2", "-o", str(tmp_path / "big.mkv")]) == 2
    assert "renders at its trained resolution only" in capsys.readouterr().err

    inr_file = tmp_path / "clip.inr"
    assert main(["encode", str(tiny_clip_file), "--model", "toy-thumbs", "--steps", "60", "-o", str(inr_file)]) == 0
    capsys.readouterr()
    assert main(["info", str(inr_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["header"]["model"] == "toy-thumbs" and info["accounted"] == info["bytes"]
    assert [t["name"] for t in info["header"]["tensors"]] == ["thumbs"]
    decoded = tmp_path / "decoded.mkv"
    assert main(["decode", str(inr_file), "-o", str(decoded)]) == 0
    frames, _ = read_media(decoded, ReadOptions())
    assert frames.shape == tiny_clip.shape and psnr(frames.float() / 255, tiny_clip.float() / 255) > 14
