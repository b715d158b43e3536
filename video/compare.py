"""`inr compare`: INR models vs classic codecs on the same pixels, as JSON, CSV and an HTML page.

A video is compared with x264/x265 (a CRF sweep per preset), an image with JPEG / WebP /
AVIF (and optionally x265 intra; a quality sweep, see video.image_codecs). Every point (an
INR at a target bpp, or a codec at a setting) is cached as JSON under REPORT_DIR/points/,
keyed by everything that determines it, so re-running with the same arguments only
computes what is missing. Image points also keep their coded file and the PNG it decodes to
there; a video's INR points keep their `.inr`.

A video is never held whole: every point reads the source again in chunks (`video.stream`),
an INR point is encoded by `inr encode`'s own path (groups of frames when the range is long,
the file kept under points/) and its quality measured GOP by GOP, a codec is fed and decoded
chunk by chunk, and the per-frame metrics are averaged at the end (`video.quality.stream_quality`),
so memory follows a chunk or a group of frames, not the length of `--frames A:B`.

An INR point that cannot be made (InrError: e.g. a target bpp below the smallest model
the family can build) is recorded with status "failed" and its reason, and the rest of the
report goes on; failed points are not cached, so a later run tries them again.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

import inr
from inr.errors import InrError
from inr.export.compress import ExportOptions, decode_bytes, encode_to_bpp
from inr.models import get_spec
from inr.options import default_budget, fit_options
from inr.models.auto import check_handles, resolve_model
from video.bd import bd_psnr, bd_rate
from video import image_codecs
from video.codecs import CODECS, decode_seconds, decoded_chunks, encode_stream
from video.fitting import load_signal, signal_kind, write_json
from video.media import MediaInfo, ReadOptions, atomic_path, to_uint8
from video.options import DEFAULT_CRFS, DEFAULT_PRESETS, DEFAULT_VIDEO_CODECS
from video.quality import clip_quality, stream_quality

DEFAULT_MODELS = ("auto",)  # inr.models.auto picks the family for the input's kind
CHUNK_BYTES = 64 << 20  # uint8 frames of the reference (and as many decoded) held at once


@dataclass
class CompareOptions:
    """What to compare. Codec settings left as None take the defaults for the input's kind:
    a video gets h264,h265 at presets medium,veryslow and DEFAULT_CRFS; an image gets
    jpeg,webp,avif at image_codecs.DEFAULT_QUALITIES. Settings of the other kind are
    ignored (the CLI refuses them). models None: the kind's DEFAULT_MODELS."""

    models: list[str] | None
    bpps: list[float]
    codecs: list[str] | None = None
    presets: list[str] | None = None  # video codecs only
    crfs: list[int] | None = None  # video codecs only
    qualities: list[int] | None = None  # image codecs only
    steps: int | None = None
    epochs: int | None = None
    seconds: float | None = None
    seed: int = 0
    schedule: str = "fast"
    bits: int = 8
    read: ReadOptions = field(default_factory=ReadOptions)

    def validate(self, kind: str = "video") -> None:
        """Check everything against the input's kind ("image" or "video") and fill defaults."""
        if kind not in ("image", "video"):
            raise InrError(f"compare takes an image or a video, not {kind}")
        models = list(DEFAULT_MODELS) if self.models is None else self.models
        if not models:
            raise InrError("--models needs at least one model")
        self.models = list(dict.fromkeys(resolve_model(m, kind)[0] for m in models))
        for m in self.models:
            get_spec(m)  # an unknown name is refused as such
            check_handles(m, kind, "the input")
        if kind == "image":
            self.codecs = list(image_codecs.DEFAULT_IMAGE_CODECS) if self.codecs is None else self.codecs
            for c in self.codecs:
                if c in CODECS:
                    raise InrError(f"'{c}' is a video codec; for an image choose from {', '.join(image_codecs.IMAGE_CODECS)}")
                image_codecs.check_codec(c)
            self.qualities = list(image_codecs.DEFAULT_QUALITIES) if self.qualities is None else self.qualities
            for c in self.codecs:
                lo, hi = image_codecs.quality_range(c)
                if any(not lo <= q <= hi for q in self.qualities):
                    raise InrError(f"--quality for {c} must be in {lo}..{hi}")
        else:
            self.codecs = list(DEFAULT_VIDEO_CODECS) if self.codecs is None else self.codecs
            for c in self.codecs:
                if c in image_codecs.IMAGE_CODECS:
                    raise InrError(f"'{c}' is an image codec; for a video choose from {', '.join(CODECS)}")
                if c not in CODECS:
                    raise InrError(f"unknown codec '{c}' (choose from {', '.join(CODECS)})")
            self.presets = list(DEFAULT_PRESETS) if self.presets is None else self.presets
            self.crfs = list(DEFAULT_CRFS) if self.crfs is None else self.crfs
        if not self.bpps or any(b <= 0 for b in self.bpps):
            raise InrError("--bpp needs positive values, e.g. 0.05,0.1,0.2")
        budget = default_budget(self.steps, self.epochs, self.seconds, kind)
        self.steps, self.epochs, self.seconds = budget["steps"], budget["epochs"], budget["seconds"]


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
    path, out_dir = Path(path), Path(out_dir)
    kind = signal_kind(path)
    opts.validate(kind)
    cache = PointCache(out_dir / "points")
    source = _source_id(path, opts.read)
    if kind == "video":
        clip = VideoRange.open(path, opts.read)
        t, h, w, fps = clip.frames, clip.height, clip.width, clip.info.fps or 25.0
        shown = clip.frame(t // 2)
        points = _inr_video_points(clip, source, opts, cache, device, log, callback)
        points += _video_codec_points(clip, fps, source, opts, cache, log)
    else:
        signal, _ = load_signal(path, opts.read)
        image = to_uint8(signal.data)
        (h, w, _), t, fps, shown = image.shape, 1, None, image
        points = _inr_image_points(signal, image, source, opts, cache, device, log, callback)
        points += _image_codec_points(image, source, opts, cache, log)

    failed = [p for p in points if not ok(p)]
    results = {
        "input": str(path),
        "kind": kind,
        "frames": t,
        "width": w,
        "height": h,
        "fps": fps,
        "size_note": (
            "INR: .inr file bytes; codecs: raw Annex-B elementary stream bytes (no container)"
            if kind == "video"
            else "INR: .inr file bytes; JPEG/WebP/AVIF: whole files as written (headers included); x265 intra: raw Annex-B stream, SEI dropped"
        ),
        "points": points,
        "failed": len(failed),
        "bd_rate": bd_table(points, opts),
        "bd_psnr": bd_table(points, opts, psnr_delta=True),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", results)
    write_csv(out_dir / "results.csv", points)
    from video.report import render_html

    with atomic_path(out_dir / "report.html") as tmp:
        tmp.write_text(render_html(results, shown, cache.folder))
    return results


@dataclass
class VideoRange:
    """The frames a video comparison is on, read again in chunks for each point, never whole."""

    path: Path
    read: ReadOptions
    info: MediaInfo
    frames: int
    height: int
    width: int

    @classmethod
    def open(cls, path: Path, read: ReadOptions) -> "VideoRange":
        from video.stream import geometry

        info, t, h, w = geometry(path, read)
        return cls(path, read, info, t, h, w)

    @property
    def chunk(self) -> int:
        """Frames per chunk: CHUNK_BYTES of uint8 at most, at least one frame."""
        return max(1, min(self.frames, CHUNK_BYTES // (self.height * self.width * 3)))

    def chunks(self) -> Iterator[np.ndarray]:
        """The range's frames, `chunk` at a time, from one ffmpeg process."""
        from video.stream import read_chunks

        for c in read_chunks(self.path, self.read, [self.chunk] * -(-self.frames // self.chunk), self.info):
            yield c.numpy()

    def frame(self, i: int) -> np.ndarray:
        """Frame i of the range (the one the report shows), read on its own."""
        from video.stream import read_chunks

        one = dataclasses.replace(self.read, start=self.read.start + i, max_frames=1)
        return next(read_chunks(self.path, one, [1], self.info)).numpy()[0]


def _in_step(decoded: Iterator[tuple[np.ndarray, np.ndarray | None]], clip: VideoRange, what: str, show: int, keep: dict) -> Iterator[tuple]:
    """(decoded chunk, the same frames of the reference, decoded Y or None) for
    `stream_quality`, from `decoded`'s (frames, Y) chunks of `clip.chunk` frames; keeps decoded
    frame `show` in keep["frame"] and refuses a decode with another number of frames."""
    reference, seen = clip.chunks(), 0
    try:
        for frames, y in decoded:
            original = next(reference, None)
            if original is None or len(original) != len(frames):
                raise InrError(f"{what} decoded frames that do not line up with the {clip.frames} compared")
            if seen <= show < seen + len(frames):
                keep["frame"] = frames[show - seen]
            seen += len(frames)
            yield frames, original, y
    finally:
        reference.close()
    if seen != clip.frames:
        raise InrError(f"{what} decoded {seen} frames, expected {clip.frames}")


def ok(point: dict) -> bool:
    """A point that was measured (older cached points have no status: they were)."""
    return point.get("status", "ok") == "ok"


def _inr_points(kind: str, source: dict, opts: CompareOptions, cache: PointCache, log, make) -> list[dict]:
    """One point per (model, target bpp), through the same encoder as `inr encode`, so every
    registered family, present or future, is compared the same way. `make(key, fit options,
    bpp, bits_per_param)` encodes and measures one point: (point, the decoded frame to show)."""
    points: list[dict] = []
    for model in opts.models:
        bits_per_param = None  # learnt from this model's first file, reused for its next targets
        for bpp in sorted(opts.bpps):
            key = _key(source, "inr", model, bpp, opts.epochs, opts.seconds, opts.steps, opts.seed, opts.schedule, opts.bits, inr.__version__)
            point = cache.get(key)
            if point is None:
                log(f"{model} @ {bpp} bpp ...")
                fopts = fit_options(model, kind, steps=opts.steps, epochs=opts.epochs, seconds=opts.seconds, seed=opts.seed, schedule=opts.schedule)
                try:
                    point, shown = make(key, fopts, bpp, bits_per_param)
                except InrError as exc:  # this point cannot be made; the others can
                    log(f"{model} @ {bpp} bpp failed: {exc}")
                    points.append({"method": model, "preset": "", "setting": bpp, "kind": "inr", "status": "failed", "error": str(exc), "key": key})
                    continue
                point = {"method": model, "preset": "", "setting": bpp, **point, "kind": "inr", "status": "ok"}
                cache.put(key, point, shown)
            bits_per_param = point.get("rate_control", {}).get("attempts", [{}])[-1].get("bits_per_param", bits_per_param)
            point["key"] = key
            points.append(point)
    return points


def _inr_image_points(signal, image: np.ndarray, source: dict, opts: CompareOptions, cache: PointCache, device, log, callback) -> list[dict]:
    h, w, _ = image.shape

    def make(key: str, fopts, bpp: float, bits_per_param: float | None) -> tuple[dict, np.ndarray]:
        t0 = time.perf_counter()  # every rate-control attempt counts: a user waits for all of them
        enc, rate = encode_to_bpp(signal, fopts, ExportOptions(bits=opts.bits), bpp, device, callback=callback, bits_per_param=bits_per_param)
        encode_seconds = time.perf_counter() - t0
        decoded, _, dsec = decode_bytes(enc.data, device)
        dec = to_uint8(decoded)[None]
        q = clip_quality(dec, image[None])
        point = {
            "bytes": len(enc.data), "bpp": len(enc.data) * 8 / (h * w), "psnr": q["psnr"], "psnr_y": q["psnr_y"], "msssim": q["msssim"],
            "encode_seconds": encode_seconds, "rate_control": rate, "decode_fps": 1 / dsec, "per_frame_psnr": q["per_frame_psnr"],
            **_keep_files(cache, key, enc.data, ".inr"),
        }
        return point, dec[0]

    return _inr_points("image", source, opts, cache, log, make)


def _inr_video_points(clip: VideoRange, source: dict, opts: CompareOptions, cache: PointCache, device, log, callback) -> list[dict]:
    """Each point is `inr encode` of the range (video.gop_encode: one fit when it fits memory,
    else groups of frames fitted one at a time), its file kept under points/; the quality is
    the encoder's own report, measured on what the file decodes to, GOP by GOP."""
    from inr.export import gop as gopfile
    from video.gop_encode import encode_video

    show = clip.frames // 2

    def make(key: str, fopts, bpp: float, bits_per_param: float | None) -> tuple[dict, np.ndarray]:
        file = cache.folder / f"{key}.inr"
        report = encode_video(clip.path, file, fopts, ExportOptions(bits=opts.bits), clip.read, device, bpp=bpp, callback=callback, bits_per_param=bits_per_param)
        Path(str(file) + ".json").unlink(missing_ok=True)  # the point's JSON is the cache entry
        shown = to_uint8(next(gopfile.decode_range(file, show, show + 1, device)))[0]
        point = {k: report[k] for k in ("bytes", "bpp", "psnr", "psnr_y", "msssim", "encode_seconds")}
        point |= {"rate_control": report["rate_control"]} if "rate_control" in report else {}
        point |= {"decode_fps": report["decode_fps"], "per_frame_psnr": report["per_frame_psnr"], "file": f"{cache.folder.name}/{file.name}"}
        if len(report.get("gops", [])) > 1:
            point["gops"] = len(report["gops"])
        return point, shown

    return _inr_points("video", source, opts, cache, log, make)


def _keep_files(cache: PointCache, key: str, data: bytes, suffix: str) -> dict:
    """An image point's coded file beside the PNG it decodes to, paths relative to the report."""
    with atomic_path(cache.folder / f"{key}{suffix}") as tmp:
        tmp.write_bytes(data)
    return {"file": f"{cache.folder.name}/{key}{suffix}", "decoded_png": f"{cache.folder.name}/{key}.png"}


def _video_codec_points(clip: VideoRange, fps: float, source: dict, opts: CompareOptions, cache: PointCache, log) -> list[dict]:
    """A CRF sweep per codec and preset: the range is fed to the encoder and the stream decoded
    back chunk by chunk, each chunk measured against the same frames of the source."""
    t, h, w = clip.frames, clip.height, clip.width
    points: list[dict] = []
    for codec in opts.codecs:
        for preset in opts.presets:
            for crf in opts.crfs:
                key = _key(source, "codec", codec, preset, crf)
                point = cache.get(key)
                if point is None:
                    log(f"{codec} {preset} crf {crf} ...")
                    keep: dict = {}
                    with tempfile.TemporaryDirectory(prefix="inr-baseline-") as tmp:
                        stream = Path(tmp) / f"out.{CODECS[codec][1]}"
                        size, encode_seconds = encode_stream(clip.chunks(), (h, w), codec, preset, crf, stream, fps)
                        seconds = decode_seconds(stream)
                        q = stream_quality(_in_step(decoded_chunks(stream, (h, w), clip.chunk), clip, codec, t // 2, keep))
                    point = {
                        "method": codec, "preset": preset, "setting": crf, "bytes": size, "bpp": size * 8 / (t * h * w),
                        "psnr": q["psnr"], "psnr_y": q["psnr_y"], "msssim": q["msssim"],
                        "encode_seconds": encode_seconds, "decode_fps": t / max(seconds, 1e-9),
                        "per_frame_psnr": q["per_frame_psnr"], "kind": "codec", "status": "ok",
                    }
                    cache.put(key, point, keep["frame"])
                point["key"] = key
                points.append(point)
    return points


def _codec_version(codec: str) -> str:
    """Encoder identity for cache keys: a Pillow or libavif/libwebp upgrade changes the bytes."""
    import PIL
    from PIL import features

    lib = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}.get(codec)
    return f"Pillow {PIL.__version__} {lib} {features.version(lib) if lib else ''}"


def _image_codec_points(image: np.ndarray, source: dict, opts: CompareOptions, cache: PointCache, log) -> list[dict]:
    """A quality sweep per image codec; decoded to PNG, quality measured like the INR's."""
    h, w, _ = image.shape
    points: list[dict] = []
    for codec in opts.codecs:
        preset = image_codecs.SETTINGS[codec]
        for quality in opts.qualities:
            key = _key(source, "image-codec", codec, preset, quality, _codec_version(codec))
            point = cache.get(key)
            if point is None:
                log(f"{codec} quality {quality} ...")
                res = image_codecs.code(image, codec, quality)
                q = clip_quality(res.decoded[None], image[None])
                point = {
                    "method": codec, "preset": preset, "setting": quality, "bytes": res.bytes, "bpp": res.bpp(),
                    "psnr": q["psnr"], "psnr_y": q["psnr_y"], "msssim": q["msssim"],
                    "encode_seconds": res.encode_seconds, "decode_fps": 1 / max(res.decode_seconds, 1e-9),
                    "per_frame_psnr": q["per_frame_psnr"], "kind": "codec", "status": "ok",
                    **_keep_files(cache, key, res.data, image_codecs.suffix(codec)),
                }
                if codec == image_codecs.X265_INTRA:
                    point["crf"] = image_codecs.x265_crf(quality)
                cache.put(key, point, res.decoded)
            point["key"] = key
            points.append(point)
    return points


def curve(points: list[dict], method: str, preset: str = "") -> tuple[list[float], list[float]]:
    """(bpp, PSNR) of one method's measured points, by rate; failed points have neither."""
    sel = sorted((p for p in points if p["method"] == method and p["preset"] == preset and ok(p)), key=lambda p: p["bpp"])
    return [p["bpp"] for p in sel], [p["psnr"] for p in sel]


def bd_table(points: list[dict], opts: CompareOptions, psnr_delta: bool = False) -> dict:
    """{inr method: {codec: {preset: BD-rate % (or BD-PSNR dB) of the INR vs that codec}}}.

    None where it cannot be measured: the curves do not overlap in PSNR, or fewer than two
    points of a curve were made."""
    pairs: dict[str, list[str]] = {}  # codec -> its presets, in the order they were run
    for p in points:
        if p["kind"] == "codec" and p["preset"] not in pairs.setdefault(p["method"], []):
            pairs[p["method"]].append(p["preset"])
    table: dict = {}
    for model in opts.models:
        r_t, q_t = curve(points, model)
        table[model] = {}
        for codec, presets in pairs.items():
            table[model][codec] = {}
            for preset in presets:
                r_c, q_c = curve(points, codec, preset)
                try:
                    fn = bd_psnr if psnr_delta else bd_rate
                    v = fn(r_c, q_c, r_t, q_t)
                except ValueError:
                    v = math.nan
                table[model][codec][preset] = None if math.isnan(v) else round(v, 3)
    return table


CSV_FIELDS = ["method", "preset", "setting", "status", "bytes", "bpp", "psnr", "psnr_y", "msssim", "encode_seconds", "decode_fps", "error"]


def write_csv(path: Path, points: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({**p, "status": p.get("status", "ok")} for p in points)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
