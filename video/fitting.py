"""Fit a media file (image, video or audio) and write the standard outputs folder.

OUT_DIR/recon.png, recon.mp4 or recon.wav, OUT_DIR/metrics.json, OUT_DIR/checkpoint/. Used by the CLI
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
from inr.errors import InrError
from inr.signals import Signal, audio_pcm, audio_signal, image_signal, video_signal
from video.audio import is_audio_path, probe_audio, read_audio, write_audio
from video.media import ReadOptions, atomic_path, probe, read_media, save_image, write_video


def load_signal(path: Path | str, read: ReadOptions):
    """Image files become image signals, audio files audio signals (sample rate in the meta);
    everything else (video, frame folders) video signals."""
    if is_audio_path(path):
        return load_audio_signal(path, read)
    info = probe(path)
    if info.kind == "image":
        frames, _ = read_media(path, read)
        return image_signal(frames[0], source=str(path)), info
    frames, info = read_media(path, read)
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


def load_audio_signal(path: Path | str, read: ReadOptions):
    """An audio file as an audio signal; the frame and picture options do not apply to it."""
    if read.resize or read.crop or read.max_frames is not None or read.start:
        raise InrError(f"{path} is audio: --max-frames, --resize and --crop apply to images and video only")
    samples, info = read_audio(path, read.memory_limit)
    return audio_signal(samples, source=str(path), sample_rate=info.sample_rate), info


def signal_kind(path: Path | str) -> str:
    """'image', 'video' or 'audio': what `load_signal` will make of `path`, from a quick probe
    that refuses an unreadable file before any work starts."""
    if is_audio_path(path):
        probe_audio(path)
        return "audio"
    return "image" if probe(path, exact=False).kind == "image" else "video"


def signal_extent(signal: Signal) -> tuple[int, dict]:
    """(what bpp is counted over, the report's size fields): pixels (frames x H x W) for
    images and video; for audio, samples in time (a sample of every channel counts once),
    as the rate control counts them (inr.export.compress.encode_to_bpp)."""
    data = signal.data
    if signal.kind == "audio":
        rate = int(signal.meta["sample_rate"])
        samples = int(data.shape[0])
        return samples, {"samples": samples, "channels": int(data.shape[1]), "sample_rate": rate, "duration": samples / rate}
    frames = int(data.shape[0]) if signal.kind == "video" else 1
    height, width = int(data.shape[-3]), int(data.shape[-2])
    return frames * height * width, {"width": width, "height": height, "frames": frames}


def write_reconstruction(out_dir: Path, signal: Signal, recon: torch.Tensor, info) -> dict:
    """Write the reconstruction beside metrics.json; returns what metrics.json says about it."""
    _, extent = signal_extent(signal)
    if signal.kind == "image":
        out = save_image(out_dir / "recon.png", recon)
    elif signal.kind == "audio":
        out = write_audio(out_dir / "recon.wav", audio_pcm(recon), extent["sample_rate"])
    else:
        out = write_video(out_dir / "recon.mp4", recon, fps=info.fps)
        extent["fps"] = info.fps
    return {**extent, "output": str(out)}


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
    metrics.update(write_reconstruction(out_dir, signal, outcome.reconstruction, info))
    write_json(out_dir / "metrics.json", metrics)
    return metrics
