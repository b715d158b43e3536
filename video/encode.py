"""File-level encode/decode: media in, `.inr` + JSON report out, and back to media.

Quality in the report is measured on what a decoder rebuilds from the written file, never
on the float model.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import math
import time
from pathlib import Path
from typing import Callable

import torch

from inr.errors import InrError
from inr.export.codec import info as bitstream_info
from inr.device import synchronize
from inr.export.codec import decode_model
from inr.export.compress import ExportOptions, decode_bytes, encode_signal, encode_to_bpp
from inr.export.schema import check_header, weight_scheme
from inr.fit import FitState
from inr.models.auto import resolve_model
from inr.metrics import audio_snr, psnr, ssim
from inr.pipeline import FitOptions
from inr.signals import audio_pcm
from video.audio import AUDIO_EXTS, is_audio_path, write_audio
from video.fitting import load_signal, signal_extent, write_json
from video.media import LOSSLESS_IMAGE_EXTS, ReadOptions, atomic_path, save_image, to_uint8, write_video
from video.quality import clip_quality, stream_quality

log = logging.getLogger("inr.rate")


def quality(decoded: torch.Tensor, original: torch.Tensor, kind: str) -> dict:
    """Quality of what the file decodes to: the 8-bit frames, through the same code as
    `inr compare` (video.quality.clip_quality); images also get SSIM; audio gets PSNR and
    SNR of the decoded samples."""
    if kind == "audio":
        return {"psnr": psnr(decoded, original), "snr": audio_snr(decoded, original)}
    dec, orig = to_uint8(decoded), to_uint8(original)
    if kind == "image":
        q = clip_quality(dec[None], orig[None])
        return {"psnr": q["psnr"], "psnr_y": q["psnr_y"], "ssim": ssim(decoded, original), "msssim": q["msssim"]}
    return clip_quality(dec, orig)


def measure_decoded(data: bytes, original: torch.Tensor, kind: str, device: torch.device) -> tuple[dict, dict, float]:
    """(quality of what `data` decodes to against `original`, the file's header, seconds spent
    decoding: parsing and rendering, not the metrics). A video is rendered and scored a render
    batch at a time (`stream_quality`), so memory follows the batch, not the clip (a 1080p GOP
    decoded whole is as large as its float original)."""
    if kind != "video":
        decoded, header, seconds = decode_bytes(data, device)
        return quality(decoded, original, kind), header, seconds
    t0 = time.perf_counter()
    _, _, model, header = decode_model(data)
    timer = {"seconds": time.perf_counter() - t0}

    def pairs():
        start, frames = 0, model.render_frames(header["signal"]["shape"], device)
        while True:
            t0 = time.perf_counter()
            chunk = next(frames, None)
            synchronize(device)
            timer["seconds"] += time.perf_counter() - t0
            if chunk is None:
                return
            yield to_uint8(chunk), to_uint8(original[start : start + len(chunk)]), None
            start += len(chunk)

    return stream_quality(pairs()), header, timer["seconds"]


def encode_file(
    path: Path | str,
    out: Path | str,
    opts: FitOptions,
    exp: ExportOptions,
    read: ReadOptions,
    device: torch.device,
    bpp: float | None = None,
    callback: Callable[[FitState], None] | None = None,
    phase: Callable[[str], None] | None = None,
    bits_per_param: float | None = None,
) -> dict:
    """Encode `path` to `out` (at `bpp` when given; `bits_per_param`: the rate control's first
    guess, measured on an earlier file of the same model); returns the report also written to
    OUT.json."""
    out = Path(out)
    signal, info = load_signal(path, read)
    opts = dataclasses.replace(opts, model=resolve_model(opts.model, signal.kind)[0])
    t0 = time.perf_counter()
    rate = None
    if bpp is not None:
        enc, rate = encode_to_bpp(signal, opts, exp, bpp, device, callback=callback, phase=phase, bits_per_param=bits_per_param)
    else:
        enc = encode_signal(signal, opts, exp, device, callback=callback, phase=phase)
    encode_seconds = time.perf_counter() - t0
    with atomic_path(out) as tmp:
        tmp.write_bytes(enc.data)
    enc = dataclasses.replace(enc, model=None)  # the fit's model and what its cycles hold go before decoding
    gc.collect()
    data = out.read_bytes()  # measure what is on disk
    measured, header, decode_seconds = measure_decoded(data, signal.data, signal.kind, device)
    units, extent = signal_extent(signal)
    frames = extent.get("frames", 1)
    report = {
        "file": str(out),
        "model": enc.spec.name,
        "bytes": len(data),
        "bpp": len(data) * 8 / units,
        **measured,
        "encode_seconds": encode_seconds,
        "decode_seconds": decode_seconds,
        "decode_fps": frames / decode_seconds,
        "params": header_params(header),
        "bits": exp.bits,
        "prune": exp.prune,
        "float_psnr": enc.float_metrics["psnr"],
        **extent,
        "device": str(device),
    }
    if signal.kind == "audio":
        report["kbps"] = len(data) * 8 / extent["duration"] / 1000
    if rate:
        report["rate_control"] = rate
        if not rate["within_tolerance"]:
            log.warning("%s is %.4g bpp for a %.4g bpp target (%+.0f %%, outside rate control's tolerance)", out.name, report["bpp"], bpp, 100 * (report["bpp"] / bpp - 1))
    write_json(Path(str(out) + ".json"), report)
    return report


def header_params(header: dict) -> int:
    """Stored parameters (weights + embeddings) as the file describes them; a file whose
    weights are step-quantized (section NETW) lists none: its model's tensor list counts."""
    if weight_scheme(header) == "steps":
        return sum(math.prod(shape) for shape in check_header(header).tensors.values())
    emb = header.get("embeddings")
    return sum(math.prod(t["shape"]) for t in header["tensors"]) + (math.prod(emb["shape"]) if emb else 0)


def decode_file(path: Path | str, out: Path | str, device: torch.device, lossless: bool = False) -> dict:
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise InrError(f"{path}: no such file")
    decoded, header, seconds = decode_bytes(path.read_bytes(), device)
    kind = header["signal"]["kind"]
    if kind == "audio":
        if not is_audio_path(out):
            raise InrError(f"an audio file decodes to audio: use an output ending in one of {', '.join(sorted(AUDIO_EXTS))}")
        write_audio(out, audio_pcm(decoded), header["signal"]["sample_rate"])
    elif kind == "image":
        if out.suffix.lower() not in LOSSLESS_IMAGE_EXTS:
            raise InrError("an image decodes to a lossless image file: use a .png output")
        save_image(out, decoded)
    else:
        write_video(out, decoded, fps=header["signal"].get("fps", 25.0), lossless=lossless)
    frames = decoded.shape[0] if kind == "video" else 1
    res = {"output": str(out), "kind": kind, "frames": frames, "decode_seconds": seconds, "decode_fps": frames / seconds}
    if kind == "audio":
        res.update({"samples": int(decoded.shape[0]), "sample_rate": header["signal"]["sample_rate"]})
    return res


def inspect_file(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InrError(f"{path}: no such file")
    return bitstream_info(path.read_bytes())
