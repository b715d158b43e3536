"""`inr compare`: INR models vs x264/x265 on the same frames, as JSON, CSV and an HTML page.

Every point (an INR at a target bpp, or a codec at a CRF) is cached as JSON under
REPORT_DIR/points/, keyed by everything that determines it, so re-running with the same
arguments only computes what is missing.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import inr
from inr.errors import InrError
from inr.export.compress import ExportOptions, decode_bytes, encode_to_bpp
from inr.fit import FitConfig
from inr.models import get_spec
from inr.pipeline import FitOptions
from video.bd import bd_psnr, bd_rate
from video.codecs import CODECS, encode_baseline
from video.fitting import load_signal, write_json
from video.media import ReadOptions, atomic_path, to_uint8
from video.quality import clip_quality

DEFAULT_CRFS = (18, 23, 28, 33, 38, 43, 48)


@dataclass
class CompareOptions:
    models: list[str]
    bpps: list[float]
    codecs: list[str] = field(default_factory=lambda: ["h264", "h265"])
    presets: list[str] = field(default_factory=lambda: ["medium", "veryslow"])
    crfs: list[int] = field(default_factory=lambda: list(DEFAULT_CRFS))
    epochs: int | None = None
    seconds: float | None = None
    seed: int = 0
    bits: int = 8
    read: ReadOptions = field(default_factory=ReadOptions)

    def validate(self) -> None:
        for m in self.models:
            if get_spec(m).kind != "frame" and "video" not in get_spec(m).signals:
                raise InrError(f"model {m} cannot encode video")
        for c in self.codecs:
            if c not in CODECS:
                raise InrError(f"unknown codec '{c}' (choose from {', '.join(CODECS)})")
        if not self.bpps or any(b <= 0 for b in self.bpps):
            raise InrError("--bpp needs positive values, e.g. 0.05,0.1,0.2")
        if self.epochs is None and self.seconds is None:
            self.epochs = 30


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _source_id(path: Path, read: ReadOptions) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime": int(st.st_mtime), "read": asdict(read)}


class PointCache:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict | None:
        f = self.folder / f"{key}.json"
        if f.is_file():
            try:
                return json.loads(f.read_text())
            except json.JSONDecodeError:
                return None  # a damaged cache entry is recomputed
        return None

    def put(self, key: str, point: dict, frame: np.ndarray) -> None:
        from video.media import save_image

        save_image(self.folder / f"{key}.png", torch.tensor(frame))  # copy: frame may be read-only
        write_json(self.folder / f"{key}.json", point)


def run_compare(
    path: Path | str,
    opts: CompareOptions,
    out_dir: Path | str,
    device: torch.device,
    log: Callable[[str], None] = print,
    callback=None,
) -> dict:
    opts.validate()
    path, out_dir = Path(path), Path(out_dir)
    signal, info = load_signal(path, opts.read)
    if signal.kind != "video":
        raise InrError("compare needs a video input")
    original = to_uint8(signal.data)
    t, h, w, _ = original.shape
    pixels = t * h * w
    fps = info.fps or 25.0
    cache = PointCache(out_dir / "points")
    source = _source_id(path, opts.read)
    show = t // 2
    points: list[dict] = []

    for model in opts.models:
        bits_per_param = None  # learnt from this model's first file, reused for its next targets
        for bpp in sorted(opts.bpps):
            key = _key(source, "inr", model, bpp, opts.epochs, opts.seconds, opts.seed, opts.bits, inr.__version__)
            point = cache.get(key)
            if point is None:
                log(f"{model} @ {bpp} bpp ...")
                fit = FitConfig(epochs=opts.epochs, seconds=opts.seconds, seed=opts.seed)
                fopts = FitOptions(model=model, batch_size=2 if get_spec(model).kind == "frame" else None, fit=fit)
                t0 = time.perf_counter()  # every rate-control attempt counts: a user waits for all of them
                enc, rate = encode_to_bpp(
                    signal, fopts, ExportOptions(bits=opts.bits), bpp, device, callback=callback, bits_per_param=bits_per_param
                )
                encode_seconds = time.perf_counter() - t0
                decoded, _, dsec = decode_bytes(enc.data, device)
                dec = to_uint8(decoded)
                q = clip_quality(dec, original)
                point = {
                    "method": model, "preset": "", "setting": bpp, "bytes": len(enc.data), "bpp": len(enc.data) * 8 / pixels,
                    "psnr": q["psnr"], "psnr_y": q["psnr_y"], "msssim": q["msssim"],
                    "encode_seconds": encode_seconds, "rate_control": rate,
                    "decode_fps": t / dsec, "per_frame_psnr": q["per_frame_psnr"], "kind": "inr",
                }
                cache.put(key, point, dec[show])
            bits_per_param = point.get("rate_control", {}).get("attempts", [{}])[-1].get("bits_per_param", bits_per_param)
            point["key"] = key
            points.append(point)

    for codec in opts.codecs:
        for preset in opts.presets:
            for crf in opts.crfs:
                key = _key(source, "codec", codec, preset, crf)
                point = cache.get(key)
                if point is None:
                    log(f"{codec} {preset} crf {crf} ...")
                    res = encode_baseline(original, codec, preset, crf, fps)
                    q = clip_quality(res.decoded, original, res.decoded_y)
                    point = {
                        "method": codec, "preset": preset, "setting": crf, "bytes": res.bytes, "bpp": res.bytes * 8 / pixels,
                        "psnr": q["psnr"], "psnr_y": q["psnr_y"], "msssim": q["msssim"],
                        "encode_seconds": res.encode_seconds, "decode_fps": t / max(res.decode_seconds, 1e-9),
                        "per_frame_psnr": q["per_frame_psnr"], "kind": "codec",
                    }
                    cache.put(key, point, res.decoded[show])
                point["key"] = key
                points.append(point)

    results = {
        "input": str(path),
        "frames": t,
        "width": w,
        "height": h,
        "fps": fps,
        "size_note": "INR: .inr file bytes; codecs: raw Annex-B elementary stream bytes (no container)",
        "points": points,
        "bd_rate": bd_table(points, opts),
        "bd_psnr": bd_table(points, opts, psnr_delta=True),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", results)
    write_csv(out_dir / "results.csv", points)
    from video.report import render_html

    with atomic_path(out_dir / "report.html") as tmp:
        tmp.write_text(render_html(results, original[show], cache.folder))
    return results


def curve(points: list[dict], method: str, preset: str = "") -> tuple[list[float], list[float]]:
    sel = sorted((p for p in points if p["method"] == method and p["preset"] == preset), key=lambda p: p["bpp"])
    return [p["bpp"] for p in sel], [p["psnr"] for p in sel]


def bd_table(points: list[dict], opts: CompareOptions, psnr_delta: bool = False) -> dict:
    """{inr method: {codec: {preset: BD-rate % (or BD-PSNR dB) of the INR vs that codec}}}."""
    table: dict = {}
    for model in opts.models:
        r_t, q_t = curve(points, model)
        table[model] = {}
        for codec in opts.codecs:
            table[model][codec] = {}
            for preset in opts.presets:
                r_c, q_c = curve(points, codec, preset)
                try:
                    fn = bd_psnr if psnr_delta else bd_rate
                    v = fn(r_c, q_c, r_t, q_t)
                except ValueError:
                    v = math.nan
                table[model][codec][preset] = None if math.isnan(v) else round(v, 3)
    return table


CSV_FIELDS = ["method", "preset", "setting", "bytes", "bpp", "psnr", "psnr_y", "msssim", "encode_seconds", "decode_fps"]


def write_csv(path: Path, points: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(points)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
