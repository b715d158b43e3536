"""Fit a media file (image or video) and write the standard outputs folder.

OUT_DIR/recon.png or recon.mp4, OUT_DIR/metrics.json, OUT_DIR/checkpoint/. Used by the CLI
and the job server alike, so both produce the same files.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import torch

from inr.fit import FitState
from inr.models.auto import resolve_model
from inr.pipeline import FitOptions, fit_signal
from inr.signals import image_signal, video_signal
from video.media import ReadOptions, atomic_path, probe, read_video, save_image, write_video


def load_signal(path: Path | str, read: ReadOptions):
    """Image files become image signals; everything else (video, frame folders) video signals."""
    info = probe(path)
    if info.kind == "image":
        frames, _ = read_video(path, read)
        return image_signal(frames[0], source=str(path)), info
    frames, info = read_video(path, read)
    return video_signal(frames, **video_meta(path, info.fps, read)), info


def video_meta(path: Path | str, fps: float, read: ReadOptions) -> dict:
    """A video signal's meta: its source, rate and the geometry applied (a whole clip's or one
    group of frames')."""
    meta = {"source": str(path), "fps": fps}
    if read.resize:
        meta["resize"] = list(read.resize)
    if read.crop:
        meta["crop"] = list(read.crop)
    return meta


def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


def fit_media(
    path: Path | str,
    opts: FitOptions,
    read: ReadOptions,
    out_dir: Path | str,
    device: torch.device,
    resume: bool = False,
    callback: Callable[[FitState], None] | None = None,
) -> dict:
    out_dir = Path(out_dir)
    signal, info = load_signal(path, read)
    opts = dataclasses.replace(opts, model=resolve_model(opts.model, signal.kind)[0])
    outcome = fit_signal(signal, opts, device, checkpoint_dir=out_dir / "checkpoint", resume=resume, callback=callback)
    metrics = dict(outcome.metrics)
    metrics["device"] = str(device)
    metrics["history"] = outcome.state.history
    if signal.kind == "image":
        h, w = signal.spatial_shape
        metrics.update({"width": w, "height": h})
        metrics["output"] = str(save_image(out_dir / "recon.png", outcome.reconstruction))
    else:
        t, h, w = signal.spatial_shape
        metrics.update({"width": w, "height": h, "frames": t, "fps": info.fps})
        metrics["output"] = str(write_video(out_dir / "recon.mp4", outcome.reconstruction, fps=info.fps))
    write_json(out_dir / "metrics.json", metrics)
    return metrics
