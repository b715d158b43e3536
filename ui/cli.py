"""The `inr` command line. Argument parsing and progress display only; the work lives in
`inr` (models, fitting) and `video` (media, codecs, reports).

Errors a user can cause print one line on stderr and exit 2; Ctrl-C exits 130 after the
current checkpoint is written.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from inr.errors import InrError
from inr.memory import return_freed_memory
from inr.options import LOSSES
from video.options import DEFAULT_CRFS, DEFAULT_PRESETS

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line (no usage dump) with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(EXIT_USAGE)


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return v


# ------------------------------------------------------------------ progress
class FitProgress:
    """Rich progress bar fed by the trainer's callback: step, PSNR, ETA."""

    def __init__(self, label: str, total_steps: int | None, seconds: float | None):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.by_time = total_steps is None
        total = seconds if self.by_time else total_steps
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.progress.add_task(label, total=total, info="")
        self._last = 0.0

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, state) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and state.step != state.total_steps:
            return
        self._last = now
        done = state.elapsed if self.by_time else state.step
        info = f"step {state.step}  epoch {state.epoch:.1f}  PSNR {state.psnr:5.2f} dB  lr {state.lr:.1e}"
        self.progress.update(self.task, completed=done, info=info)


# ------------------------------------------------------------------ commands
def _read_options(args):
    from video.media import ReadOptions, parse_size

    return ReadOptions(
        max_frames=getattr(args, "max_frames", None),
        resize=parse_size(getattr(args, "resize", None), "resize"),
        crop=parse_size(getattr(args, "crop", None), "crop"),
    )


def _speed_options(args) -> dict:
    """FitConfig speed knobs from the flags: `--X` / `--no-X` force one, absent leaves the
    device's measured default (None)."""
    return {
        "amp": args.amp,
        "channels_last": args.channels_last,
        "fused_adam": False if args.no_fused_adam else None,
        "compile": args.compile,
        "input_cache": False if args.no_input_cache else None,
    }


def _fit_options(args, kind: str):
    """FitOptions for a `kind` signal from the fit/encode flags, through the one options
    builder (defaults, checks)."""
    from inr.models import parse_param_budget
    from inr.options import KIB, fit_options

    params = parse_param_budget(args.params) if args.params else None
    if args.weights_kb:
        params = int(args.weights_kb * KIB)  # fit has no quantizer yet: 8 bits per stored parameter
    return fit_options(
        args.model, kind, steps=args.steps, epochs=args.epochs, seconds=args.seconds, params=params,
        batch_size=args.batch_size, loss=args.loss, lr=args.lr, schedule=args.schedule, target_psnr=args.target_psnr,
        seed=args.seed, checkpoint_every=args.checkpoint_every, **_speed_options(args),
    )


def _model_for(args, kind: str):
    """The family that `--model` names for a `kind` signal (`auto` resolved, `-v` says why),
    refused with one line when it does not handle that kind."""
    from inr.models import get_spec
    from inr.models.auto import AUTO, check_handles, resolve_model

    asked = args.model
    args.model, why = resolve_model(asked, kind)
    logging.getLogger("inr").log(logging.INFO if asked == AUTO else logging.DEBUG, "model %s: %s", args.model, why)
    spec = get_spec(args.model)
    check_handles(spec.name, kind, Path(args.input).name)
    return spec


def cmd_fit(args) -> int:
    from inr.device import select_device
    from video.fitting import fit_media, signal_kind

    kind = signal_kind(args.input)
    spec = _model_for(args, kind)
    device = select_device(args.device)
    opts = _fit_options(args, kind)
    total = opts.fit.steps  # with only --epochs, steps per epoch is known once the task exists: bar by epochs
    label = f"fit {spec.name} on {device.type}"
    with FitProgress(label, total, opts.fit.seconds if total is None else None) as bar:
        if total is None and opts.fit.seconds is None:
            bar = _EpochBar(bar, opts.fit.epochs)
        metrics = fit_media(args.input, opts, _read_options(args), args.output, device, resume=args.resume, callback=bar)
    keys = ["model", "params", "psnr", "snr", "ssim", "msssim", "steps", "epochs", "seconds", "decode_fps"]
    summary = "  ".join(f"{k}={_fmt(metrics[k])}" for k in keys if k in metrics)
    print(summary)
    print(f"wrote {metrics['output']} and {Path(args.output) / 'metrics.json'}")
    return 0


class _EpochBar:
    """Adapter: drive a step bar by epochs when the step count is not known up front."""

    def __init__(self, bar: FitProgress, epochs: int):
        self.bar, self.epochs = bar, epochs
        bar.by_time = False
        bar.progress.update(bar.task, total=epochs)

    def __call__(self, state) -> None:
        self.bar.progress.update(
            self.bar.task,
            completed=min(self.epochs, state.epoch),
            info=f"epoch {state.epoch:.1f}/{self.epochs}  PSNR {state.psnr:5.2f} dB  lr {state.lr:.1e}",
        )


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def cmd_render(args) -> int:
    from inr.device import select_device
    from inr.pipeline import load_for_render
    from video.media import save_image, write_video

    device = select_device(args.device)
    spec, cfg, model, header = load_for_render(Path(args.checkpoint), device)
    shape = header["meta"]["shape"]
    if args.scale != 1 and not model.any_resolution:
        raise InrError(f"{spec.name} renders at its trained resolution only; --scale needs a coordinate model")
    start = 1 if header["meta"]["signal"] == "video" else 0  # time is not rescaled
    scaled = shape[:start] + [max(1, round(n * args.scale)) for n in shape[start:-1]] + shape[-1:]
    out = model.render(scaled, device)
    target = Path(args.output)
    if header["meta"]["signal"] == "audio":  # more samples over the same duration: a higher rate
        from inr.signals import audio_pcm
        from video.audio import write_audio

        write_audio(target, audio_pcm(out), round(header["meta"]["sample_rate"] * out.shape[0] / shape[0]))
    elif header["meta"]["signal"] == "image":
        save_image(target, out)
    else:
        write_video(target, out, fps=header["meta"].get("fps", 25.0))
    print(f"wrote {target} ({'x'.join(str(int(n)) for n in out.shape[:-1])})")
    return 0


def cmd_encode(args) -> int:
    from inr.device import select_device
    from inr.export.compress import ExportOptions
    from video.encode import encode_file
    from video.fitting import signal_kind
    from video.gop_encode import encode_video

    kind = signal_kind(args.input)
    spec = _model_for(args, kind)
    if args.bpp is not None and args.params:
        raise InrError("give either --bpp or --params, not both")
    if not str(args.output).endswith(".inr"):
        raise InrError("output must end in .inr")
    device = select_device(args.device)
    bpp = args.bpp
    if args.size_kb:  # a file-size target is a bpp target over this input's pixels (audio: samples)
        bpp = args.size_kb * 1024 * 8 / _bpp_units(args, kind)
    opts = _fit_options(args, kind)
    exp = ExportOptions(bits=args.bits, embed_bits=args.embed_bits, prune=args.prune, lam=args.lam)
    exp.validate()
    gops = _gop_options(args)
    with FitProgress(f"encode {spec.name} on {device.type}", None, None) as bar:
        cb = _PhaseBar(bar, opts.fit)
        if kind == "audio":  # one signal, no groups of frames
            report = encode_file(args.input, args.output, opts, exp, _read_options(args), device, bpp=bpp, callback=cb, phase=cb.phase)
        else:
            report = encode_video(
                args.input, args.output, opts, exp, _read_options(args), device, bpp=bpp, gops=gops, callback=cb, phase=cb.phase, progress=cb.gop
            )
    if len(report.get("gops", [])) > 1:
        print(f"{len(report['gops'])} GOPs of {'/'.join(sorted({str(g['frames']) for g in report['gops']}))} frames")
    keys = ["model", "bytes", "bpp", "kbps", "psnr", "snr", "msssim", "encode_seconds", "decode_seconds", "decode_fps"]
    print("  ".join(f"{k}={_fmt(report[k])}" for k in keys if k in report))
    print(f"wrote {args.output} and {args.output}.json")
    return 0


def _bpp_units(args, kind: str) -> int:
    """What --bpp counts bits over for this input: pixels after the geometry options, or
    for audio the samples in time (from the header's duration)."""
    if kind == "audio":
        from video.audio import probe_audio

        info = probe_audio(args.input)
        return max(1, round(info.duration * info.sample_rate))
    from video.media import output_geometry, probe

    t, h, w = output_geometry(probe(args.input), _read_options(args))
    return t * h * w


def _gop_options(args):
    from video.gop_encode import GopOptions

    if args.memory_gb is not None and args.memory_gb < 1:
        raise InrError("--memory-gb must be at least 1")
    budget = None if args.memory_gb is None else int(args.memory_gb * (1 << 30))
    return GopOptions(
        gop=args.gop, warm_start=not args.no_warm_start, resume=args.resume, memory_budget=budget, workers=args.workers, ray=args.ray,
        scene_cut=args.scene_cut,
    )


class _PhaseBar:
    """Progress over the encode phases (fit, prune fine-tune, QAT), each with its own bar,
    and over the groups of frames (GOP i/n) of a long video."""

    def __init__(self, bar: FitProgress, fit):
        self.bar, self.fit = bar, fit
        self.name = "fit"
        self.gop_label = ""

    def phase(self, name: str) -> None:
        self.name = name

    def gop(self, done: int, total: int) -> None:
        self.gop_label = f"GOP {min(done + 1, total)}/{total} " if total > 1 else ""

    def __call__(self, state) -> None:
        total = state.total_steps or (state.seconds or 1)
        done = state.step if state.total_steps else state.elapsed
        self.bar.progress.update(
            self.bar.task,
            total=total,
            completed=min(done, total),
            description=f"{self.gop_label}{self.name:5s}",
            info=f"step {state.step}  PSNR {state.psnr:5.2f} dB",
        )


def cmd_decode(args) -> int:
    from inr.device import select_device
    from video.gop_encode import decode_video

    res = decode_video(args.input, args.output, select_device(args.device), frames=args.frames, lossless=args.lossless)
    if res["kind"] == "audio":
        print(f"wrote {res['output']} ({res['samples']} samples at {res['sample_rate']} Hz, decoded in {res['decode_seconds']:.2f} s)")
    else:
        gops = f", {res['gops_decoded']} of {res['gops']} GOP(s) decoded" if "gops" in res else ""
        print(f"wrote {res['output']} ({res['frames']} frame(s){gops}, {res['decode_fps']:.1f} frames/s decode)")
    return 0


def cmd_info(args) -> int:
    import json

    from video.gop_encode import inspect

    info = inspect(args.input)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    h = info["header"]
    sig = h["signal"]
    print(f"{args.input}: {info['bytes']} bytes, model {h['model']}, {sig['kind']} {'x'.join(map(str, sig['shape']))}, {len(info['gops'])} GOP(s)")
    if info["version"] == 2:
        print("GOPs (format version 2; each a complete version-1 file):")
        for i, g in enumerate(info["gops"]):
            print(f"  GOP {i:4d}  frames {g['start']:6d}-{g['start'] + g['frames'] - 1:<6d} {g['bytes']:9d} bytes  {100 * g['bytes'] / info['bytes']:5.1f} %")
        print(f"  {'total':14s} {info['accounted']:9d} bytes (preamble and index: {info['breakdown']['preamble'] + info['breakdown']['index']})")
        print("first GOP:")
        info, h = info["first_gop"], info["first_gop"]["header"]
    print("config: " + ", ".join(f"{k}={v}" for k, v in h["config"].items()))
    print("sections:")
    for name, size in info["breakdown"].items():
        print(f"  {name:14s} {size:9d} bytes  {100 * size / info['bytes']:5.1f} %")
    print(f"  {'total':14s} {info['accounted']:9d} bytes")
    if info.get("network"):
        print("tensors (step-quantized, in section NETW):")
        for t in info["network"]:
            shape = "x".join(map(str, t["shape"]))
            print(f"  {t['name']:40s} {shape:>16s} step {t['step']:.3g}  |q| <= {t['max_abs']}  Laplace scale {t['scale']:.3g}")
        return 0
    print("tensors (in section WGTS):")
    for t in h["tensors"]:
        shape = "x".join(map(str, t["shape"]))
        print(f"  {t['name']:40s} {shape:>16s} {t['bits']:2d} bit {t['coder']:9s} {t['bytes']:8d} bytes{'  pruned' if t['pruned'] else ''}")
    return 0


def _float_list(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InrError(f"--{what} expects comma-separated numbers, got '{text}'") from None
    if not vals or any(v <= 0 for v in vals):
        raise InrError(f"--{what} needs positive values, got '{text}'")
    return vals


def cmd_compare(args) -> int:
    from inr.device import select_device
    from video.compare import CompareOptions, run_compare
    from video.media import probe

    def names(text: str | None) -> list[str] | None:
        return None if text is None else [v.strip() for v in text.split(",") if v.strip()]

    info = probe(args.input)
    kind = info.kind  # codec defaults and settings depend on it
    read = _read_options(args)
    if args.frames is not None:  # a frame range of a long video: A:B is frames A to B-1
        import dataclasses

        from video.gop_encode import parse_frames

        if kind == "image" or args.max_frames:
            raise InrError("--frames takes a video, without --max-frames")
        start, stop = parse_frames(args.frames, info.frames)
        read = dataclasses.replace(read, start=start, max_frames=stop - start)
    if kind == "image" and (args.crf or args.presets):
        raise InrError("--crf and --presets are for video codecs; an image's codecs take --quality")
    if kind != "image" and args.quality:
        raise InrError("--quality is for image codecs; a video's codecs take --crf and --presets")
    opts = CompareOptions(
        models=names(args.models),
        bpps=_float_list(args.bpp, "bpp"),
        codecs=names(args.codecs),
        presets=names(args.presets),
        crfs=[int(c) for c in _float_list(args.crf, "crf")] if args.crf else None,
        qualities=[int(q) for q in _float_list(args.quality, "quality")] if args.quality else None,
        steps=args.steps,
        epochs=args.epochs,
        seconds=args.seconds,
        seed=args.seed,
        schedule=args.schedule,
        bits=args.bits,
        read=read,
    )
    res = run_compare(args.input, opts, args.output, select_device(args.device), log=lambda m: print(m, flush=True))
    for p in res["points"]:
        if p.get("status", "ok") != "ok":
            print(f"{p['method']} @ {p['setting']} bpp: failed ({p['error']})")
    for model, codecs in res["bd_rate"].items():
        for codec, presets in codecs.items():
            for preset, v in presets.items():
                print(f"BD-rate {model} vs {codec} {preset}: {'n/a (curves do not overlap)' if v is None else f'{v:+.1f} %'}")
    print(f"wrote {args.output}/report.html, results.json, results.csv")
    return 0


def cmd_batch(args) -> int:
    from rich.progress import BarColumn, Progress, TextColumn

    from video.batch import BatchJob, run_batch

    if args.bpp is None and not args.params:
        raise InrError("give --bpp or --params")
    import os

    if args.workers is None:
        args.workers = max(1, (os.cpu_count() or 1) // 2)  # torch is fastest with >= 2 threads a worker
    if args.workers < 1:
        raise InrError("--workers must be at least 1")

    def make_job(src: str, dst: str) -> BatchJob:
        return BatchJob(
            src, dst, args.model, args.bpp, args.params, args.epochs, args.seconds, args.bits, args.seed, args.max_frames, args.resize, device=args.device
        )

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}")) as bar:
        overall = bar.add_task("files", total=None, info="")
        per_file: dict[str, int] = {}

        def report(event: str, name: str, value: float = 0.0) -> None:
            if event == "plan":
                bar.update(overall, total=value, info=name)
            elif event == "start":
                per_file[name] = bar.add_task(f"  {Path(name).name}", total=1.0, info="")
            elif event == "progress" and name in per_file:
                bar.update(per_file[name], completed=value)
            elif event == "done":
                bar.advance(overall)
                if name in per_file:
                    bar.update(per_file[name], completed=1.0, info="ok" if value else "failed")

        summary = run_batch(args.input, args.output, make_job, args.recursive, args.workers, args.ray, report)
    print(f"{summary['done']} done, {summary['failed']} failed, {summary['total_bytes']} bytes; manifest: {args.output}/manifest.csv")
    return 0 if summary["failed"] == 0 else 1


def _server_config(args):
    import os

    from server.api import TOKEN_ENV, ServerConfig, default_data_dir

    from server.limits import Limits

    token = args.token or os.environ.get(TOKEN_ENV) or None
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    from server.retention import Retention

    if args.job_memory_mb is not None and not (args.job_memory_mb == 0 or 1024 <= args.job_memory_mb < 1 << 40):
        raise InrError("--job-memory-mb must be 0 (no cap) or at least 1024 (a worker needs about 1 GiB to load torch)")
    memory = None if args.job_memory_mb is None else int(args.job_memory_mb * (1 << 20))
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * (1 << 20)), job_memory_bytes=memory)
    retention = Retention(job_max_age_s=None if args.keep_jobs_days is None else args.keep_jobs_days * 86400)
    return ServerConfig(data_dir=data_dir, token=token, workers=args.workers, device=args.device, limits=limits, retention=retention)


def cmd_serve(args, with_ui: bool = False) -> int:
    from server.api import check_bind, serve

    cfg = _server_config(args)
    check_bind(args.host, cfg.token)
    where = f"http://{args.host}:{args.port}/"
    print(f"inr {'UI' if with_ui else 'API'} on {where} (API docs: {where}docs), data in {cfg.data_dir}", flush=True)
    if with_ui:  # composed here, at the entry point: ui -> server, never the other way
        from ui.app import mount_ui

        serve(args.host, args.port, cfg, compose=lambda app: mount_ui(app, cfg))
    else:
        serve(args.host, args.port, cfg)
    return 0


def cmd_models(args) -> int:
    from inr.models import all_specs

    for spec in all_specs():
        print(f"{spec.name:10s} {'/'.join(spec.signals):18s} {spec.description}")
    return 0


# ------------------------------------------------------------------ parser
def _add_geometry(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-frames", type=positive_int, help="use at most F frames")
    p.add_argument("--resize", metavar="WxH", help="resize frames first (bicubic)")
    p.add_argument("--crop", metavar="WxH", help="then centre-crop (HNeRV crops Bunny to 1280x640)")


def _add_budget(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=positive_int, help="optimisation steps")
    p.add_argument("--epochs", type=positive_int, help="passes over the signal (frames or pixels)")
    p.add_argument("--seconds", type=positive_float, help="wall-clock training budget; the LR schedule follows it")
    p.add_argument(
        "--schedule", choices=("fast", "paper"), default="fast",
        help="learning-rate schedule: fast (tuned for short CPU budgets) or paper (as the family's paper trains it)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps")


def _add_speed(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("speed (defaults: what measured faster at equal quality on this device)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 mixed precision (default on a CPU with native bf16 for NeRV/NeRV++/ffn; off on CUDA)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format for conv models (default on a CPU, off on CUDA)")
    g.add_argument("--no-fused-adam", action="store_true", help="plain per-parameter Adam loop")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (minutes to start; long fits)")
    g.add_argument("--no-input-cache", action="store_true", help="recompute hash-grid lookups of the pixels every step")


def build_parser() -> Parser:
    parser = Parser(prog="inr", description="Store images and videos as neural networks.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more details")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only (hides e.g. the hash-grid backend line)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("fit", help="fit an INR to an image, video or audio", description="Fit an INR to an image, a video or audio.")
    p.add_argument("input", help="image, video or audio file (wav, flac, mp3, ...), or folder of frames")
    p.add_argument("--model", required=True, help="see `inr models`")
    fit_size = p.add_mutually_exclusive_group()
    fit_size.add_argument("--params", help="parameter budget, e.g. 0.75M or 300k (sizes the model's width)")
    fit_size.add_argument(
        "--weights-kb", type=positive_float,
        help="weight budget in KiB at 8 bits per parameter (1 KiB = 1024 params); `encode --size-kb` is a file size",
    )
    _add_budget(p)
    p.add_argument("--target-psnr", type=positive_float, help="stop early once the PSNR reaches this (dB)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the model paper's)")
    p.add_argument("--batch-size", type=positive_int, help="coordinates (MLPs) or frames (NeRV family) per step")
    p.add_argument("--loss", choices=LOSSES, default="l2", help="l1_ssim is NeRV's 0.7 L1 + 0.3 (1-SSIM), frame models only")
    p.add_argument("--checkpoint-every", type=positive_int, help="also checkpoint every N steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint")
    _add_speed(p)
    _add_geometry(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("render", help="render a checkpoint, at any scale for coordinate models")
    p.add_argument("checkpoint", help="OUT_DIR/checkpoint from `inr fit`")
    p.add_argument("--scale", type=positive_float, default=1.0, help="spatial scale (INRs are continuous)")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", required=True, help="PNG for images, mp4 or folder/ for video, wav for audio")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("encode", help="fit, prune, quantize and entropy-code into an .inr file")
    p.add_argument("input", help="image, video or audio file, or folder of frames")
    p.add_argument("-o", "--output", required=True, metavar="OUT.inr")
    p.add_argument("--model", default="auto", help="see `inr models`; auto (default) picks by signal, `-v` says why")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--bpp", type=positive_float, help="target bits per pixel (rate control, within 10 %%)")
    size.add_argument("--size-kb", type=positive_float, help="target file size in KiB (rate control, within 10 %%)")
    size.add_argument("--params", help="parameter budget, e.g. 0.3M")
    p.add_argument("--bits", type=int, default=8, help="weight bit depth, 2..16")
    p.add_argument("--embed-bits", type=int, default=6, help="HNeRV embedding bit depth, 2..16")
    p.add_argument("--prune", type=float, default=0.0, help="fraction of weights to prune globally, [0, 1)")
    p.add_argument("--lambda", dest="lam", type=float, help="rate-aware families (grid): minimise MSE + LAMBDA x bpp")
    _add_budget(p)
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the model paper's)")
    p.add_argument("--batch-size", type=positive_int, help="coordinates (MLPs) or frames (NeRV family) per step")
    p.add_argument("--loss", choices=LOSSES, default="l2", help="as for fit")
    g = p.add_argument_group("long videos (groups of frames, one seekable file)")
    g.add_argument("--gop", type=positive_int, help="frames per group of frames (default: from resolution and memory; a clip that fits is one group)")
    g.add_argument("--scene-cut", action="store_true", help="start a new group at each hard scene cut (one extra pass over the video)")
    g.add_argument("--no-warm-start", action="store_true", help="fit every group from scratch instead of from the previous group's weights")
    g.add_argument("--resume", action="store_true", help="continue an interrupted encode of the same input and settings, redoing only unfinished groups")
    g.add_argument("--memory-gb", type=positive_float, help="memory budget that sizes the groups (default: half the RAM)")
    g.add_argument("--workers", type=positive_int, help="groups fitted at once with --no-warm-start (default: half the cores)")
    g.add_argument("--ray", metavar="ADDRESS", help="with --no-warm-start: fit the groups as Ray tasks ('auto', an address, or 'local')")
    _add_speed(p)
    _add_geometry(p)
    p.set_defaults(func=cmd_encode, target_psnr=None, checkpoint_every=None, weights_kb=None)

    p = sub.add_parser("decode", help="decode an .inr file to video, frames, an image or audio")
    p.add_argument("input", metavar="FILE.inr")
    p.add_argument("-o", "--output", required=True, help="OUT.mp4, OUT_DIR/ (PNG frames), OUT.png, or OUT.wav for audio")
    p.add_argument("--lossless", action="store_true", help="lossless RGB H.264 instead of yuv420p for playback")
    p.add_argument("--frames", metavar="A:B", help="decode only frames A to B-1 (only the groups of frames holding them)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("info", help="print an .inr file's header and where every byte goes")
    p.add_argument("input", metavar="FILE.inr")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("compare", help="rate-distortion report: INR models vs H.264/H.265, or vs JPEG/WebP/AVIF for an image")
    p.add_argument("input", help="video file, folder of frames, or image")
    p.add_argument("--models", help="comma-separated INR models (default: auto, the family `inr encode` picks for the input)")
    p.add_argument("--bpp", default="0.05,0.1,0.2", help="comma-separated target bpp for the INRs")
    p.add_argument("--codecs", help="video: h264,h265 (default); image: jpeg,webp,avif (default), x265-intra")
    p.add_argument("--presets", help=f"x264/x265 presets (default {','.join(DEFAULT_PRESETS)})")
    p.add_argument("--crf", help=f"comma-separated CRF sweep for the video codecs (default {','.join(map(str, DEFAULT_CRFS))})")
    p.add_argument("--quality", help="comma-separated quality sweep (0..100) for the image codecs (default 5,10,20,...,90,95)")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--frames", metavar="A:B", help="compare on frames A to B-1 of a video only")
    _add_budget(p)
    _add_geometry(p)
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("batch", help="compress every video under a folder (resumable)")
    p.add_argument("input", metavar="DIR")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
    p.add_argument("--model", default="auto", help="see `inr models`; auto picks by signal")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--bpp", type=positive_float)
    size.add_argument("--params")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--recursive", action="store_true")
    p.add_argument("--workers", type=int, help="parallel processes; default: half the cores, 2 torch threads each")
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster ('auto', an address, or 'local')")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--seconds", type=positive_float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-frames", type=positive_int)
    p.add_argument("--resize", metavar="WxH")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_batch)

    for name, with_ui, helptext in (("ui", True, "start the job server and the Gradio app"), ("serve", False, "start the job server (REST API only)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=positive_int, default=7860)
        p.add_argument("--data-dir", help="jobs database, uploads and artifacts (default: the user's data dir)")
        p.add_argument("--token", help="require 'Authorization: Bearer T' (or INR_TOKEN); needed beyond loopback")
        p.add_argument("--workers", type=positive_int, default=1, help="jobs run at once (default 1 on CPU)")
        p.add_argument("--max-upload-mb", type=positive_float, default=200.0, help="largest accepted upload")
        p.add_argument("--job-memory-mb", type=float, help="address-space cap of each job, MiB (default: half the RAM over the workers; 0: none)")
        p.add_argument("--keep-jobs-days", type=positive_float, help="delete finished jobs and their files after this many days (default: keep)")
        p.add_argument("--device", default="auto")
        p.set_defaults(func=lambda a, w=with_ui: cmd_serve(a, with_ui=w))

    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    # inr's own INFO lines (which hash-grid backend runs) are shown unless -q.
    logging.getLogger("inr").setLevel(logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO))
    func: Callable = args.func
    return_freed_memory()
    try:
        return int(func(args) or 0)
    except InrError as exc:
        sys.stderr.write(f"inr {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        hint = "; --resume continues from the finished groups of frames" if args.command == "encode" else ""
        sys.stderr.write(f"inr {args.command}: interrupted; finished outputs and the last checkpoint are intact{hint}\n")
        return 130
    except BrokenPipeError:  # `inr info x.inr | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
