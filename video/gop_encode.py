"""Videos of any length: encode in groups of frames (GOPs) into one seekable `.inr` file, and
decode any frame range back, streaming both ways.

Encoding reads the clip from ffmpeg one GOP at a time (`video.stream.read_chunks`), fits each
GOP with the ordinary per-clip encoder (`inr.export.compress`), optionally starting from the
previous GOP's weights (NIRVANA's warm start), and keeps each finished GOP in a work folder
beside the output (`.OUT.inr.gops/`), so `--resume` after a kill redoes only the unfinished
ones. The final file (format version 2, `inr.export.gop`) is written under a temporary name
and renamed once every GOP is done. A clip that fits one GOP takes the single-clip path
(`video.encode.encode_file`) and gives a version-1 file, as before.

The budget: `--seconds` and `--steps` are the whole clip's and are shared among GOPs in
proportion to their frames; `--epochs` are passes over each GOP; a `--params` budget is shared
the same way; a `--bpp` target applies to every GOP (so to the clip).
"""
from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from inr.errors import InrError
from inr.export import gop as gopfile
from inr.export.codec import decode_model
from inr.export.codec import info as bitstream_info
from inr.export.compress import ExportOptions, encode_signal, encode_to_bpp
from inr.fit import FitConfig, FitState
from inr.models import get_spec
from inr.models.auto import resolve_model
from inr.pipeline import FitOptions
from inr.signals import video_signal
from video.encode import decode_file, encode_file, inspect_file, measure_decoded
from video.fitting import video_meta, write_json
from video.gop_plan import GopPlan, default_memory_budget, plan_gops, scene_cuts
from video.media import MediaInfo, ReadOptions, atomic_path, to_uint8
from video.stream import FrameSink, geometry, read_chunks

Progress = Callable[[int, int], None]  # (GOPs done, GOPs in all)
log = logging.getLogger("inr.gop")
SCAN_CHUNK = 32  # frames per chunk of the scene-cut pass


@dataclass
class GopOptions:
    gop: int | None = None  # frames per GOP; None: from the resolution and the memory budget
    warm_start: bool = True  # start each GOP from the previous one's weights
    resume: bool = False  # keep the finished GOPs of an interrupted encode of the same settings
    memory_budget: int | None = None  # bytes; None: half the machine's memory
    workers: int | None = None  # GOPs fitted at once in local processes (needs warm_start off); None: by the machine
    ray: str | None = None  # run GOPs as Ray tasks on this cluster ('local', 'auto', an address)
    scene_cut: bool = False  # a scene cut starts a new GOP (one extra streaming pass to find them)


def work_dir(out: Path) -> Path:
    """Where the finished GOPs of an encode of `out` wait for the final file."""
    return out.parent / f".{out.name}.gops"


def encode_video(
    path: Path | str, out: Path | str, opts: FitOptions, exp: ExportOptions, read: ReadOptions, device: torch.device,  # as encode_file
    bpp: float | None = None,
    gops: GopOptions | None = None,
    callback: Callable[[FitState], None] | None = None,
    phase: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    bits_per_param: float | None = None,
) -> dict:
    """Encode a video (or an image) to `out`; returns the report also written to OUT.json.
    `bits_per_param`: the `bpp` rate control's first guess (`inr compare` learns it from a
    model's first target)."""
    gops = gops or GopOptions()
    out = Path(out)
    info, t, h, w = geometry(path, read)
    progress = progress or (lambda done, total: None)
    if info.kind == "image":
        return encode_file(path, out, opts, exp, read, device, bpp, callback, phase, bits_per_param)
    opts = dataclasses.replace(opts, model=resolve_model(opts.model, "video")[0])
    cold = gops.warm_start and get_spec(opts.model).rate_aware
    if cold:
        # A rate-aware family starts from the signal itself (grid: a Laplacian pyramid and a
        # synthesis that sums it exactly); a neighbour's synthesis breaks that start (measured:
        # -6 dB on a 3-GOP clip, README), so its GOPs start cold. (shacira: its hash latents,
        # most of the model, are side tensors a warm start does not copy; not measured warm.)
        gops = dataclasses.replace(gops, warm_start=False)
    workers = _workers(gops)
    budget = (gops.memory_budget or default_memory_budget()) // workers  # GOPs in flight share the memory
    cuts = scene_cuts(read_chunks(path, read, [SCAN_CHUNK] * -(-t // SCAN_CHUNK), info)) if gops.scene_cut else []
    plan = plan_gops(t, h, w, gops.gop, opts.params, bpp, budget, cuts, opts.model)
    gops = dataclasses.replace(gops, workers=min(workers, len(plan.lengths)))
    if len(plan.lengths) == 1:  # the clip fits one GOP: the single-clip path and file format
        progress(0, 1)
        whole = dataclasses.replace(read, memory_limit=max(read.memory_limit, plan.budget))
        report = encode_file(path, out, opts, exp, whole, device, bpp, callback, phase, bits_per_param)
        progress(1, 1)
        return report
    if cold:  # said only where there are GOPs to start
        log.info("%s: GOPs start from their own signal, not warm from the previous GOP", opts.model)
    return _encode_gops(path, out, opts, exp, read, device, bpp, gops, plan, info, (h, w), callback, phase, progress, bits_per_param)


def _workers(gops: GopOptions) -> int:
    """Local processes: 1 for warm-started GOPs (each needs the previous one); otherwise as
    asked, or half the cores (torch runs best with 2 threads a process, as `inr batch`)."""
    if gops.warm_start:
        if (gops.workers or 1) > 1 or gops.ray:
            raise InrError("warm-started GOPs depend on the previous one: parallel GOPs (--workers > 1, --ray) need --no-warm-start")
        return 1
    if gops.workers is not None and gops.workers < 1:
        raise InrError("--workers must be at least 1")
    return gops.workers or max(1, (os.cpu_count() or 1) // 2)


def _settings(path, opts: FitOptions, exp: ExportOptions, read: ReadOptions, bpp, gops: GopOptions, plan: GopPlan) -> dict:
    """What a resumed encode must share with the interrupted one."""
    return json.loads(
        json.dumps(
            {
                "source": str(Path(path).resolve()),
                "lengths": plan.lengths,
                "model": opts.model,
                "params": opts.params,
                "overrides": opts.overrides,
                "batch_size": opts.batch_size,
                "loss": opts.loss,
                "fit": dataclasses.asdict(opts.fit),
                "export": dataclasses.asdict(exp),
                "bpp": bpp,
                "warm_start": gops.warm_start,
                "read": dataclasses.asdict(read) | {"memory_limit": None},
            },
            default=str,
        )
    )


def _prepare_work(out: Path, settings: dict, resume: bool) -> Path:
    work = work_dir(out)
    saved = work / "settings.json"
    if resume and saved.is_file():
        if json.loads(saved.read_text()) != settings:
            raise InrError(f"--resume: {work} holds an encode with other settings or input; run without --resume to start over")
        return work
    finished = len(list(work.glob("gop_*.json"))) if work.is_dir() else 0
    if finished:
        log.warning("starting over: %d finished GOP(s) of an earlier encode of %s dropped (--resume keeps them)", finished, out.name)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    write_json(saved, settings)
    return work


def gop_share(opts: FitOptions, frames: int, total: int) -> FitOptions:
    """One GOP's options: its share of the clip's time, steps and parameter budget."""
    share = frames / total

    def part(v, integer: bool):
        return None if v is None else (max(1, round(v * share)) if integer else max(v * share, 1e-3))

    fit: FitConfig = dataclasses.replace(opts.fit, steps=part(opts.fit.steps, True), seconds=part(opts.fit.seconds, False))
    return dataclasses.replace(opts, fit=fit, params=part(opts.params, True))


# What a GOP spends besides its fit (reading its frames, decoding its file, scoring it), in
# seconds per pixel, before the first GOP has measured it. Without it the first GOP took its
# whole fair share and the last ones got the floor: a 1080p clip of two 12-frame GOPs at
# `--seconds 120` trained its first GOP 38 s and its second 4 s (18.97 dB). Measured on
# this 2-core CPU for `grid`: 17-19 s for a 12-frame 1080p GOP (0.7-0.8 us a pixel); a GPU
# spends less, which the measurement after the first GOP then gives back to the rest.
OVERHEAD_SECONDS_PER_PIXEL = 7e-7


class TimeShare:
    """`--seconds` shared among GOPs fitted one after another, so that it holds for the whole
    encode: each GOP gets the time still left, less what every GOP still to come will spend
    besides its fit (reading its frames, decoding and scoring the file: measured per frame on
    the GOPs so far; before the first, `overhead_per_frame`), in proportion to its frames. A
    fixed share each made a 1080p encode take 1.7x its budget: a 12-frame GOP's decode and
    scoring take 20 s beside a 36 s share. A GOP never gets less than a quarter of its fixed
    share (the encode then runs over, and says so)."""

    def __init__(
        self,
        seconds: float | None,
        frames_left: int,
        total_frames: int,
        clock: Callable[[], float] = time.perf_counter,
        overhead_per_frame: float = 0.0,
    ):
        self.seconds = None if seconds is None else seconds * frames_left / total_frames  # finished GOPs (--resume) spent theirs
        self.frames_left = self.frames_todo = frames_left
        self.clock = clock
        self.started = self.mark = clock()
        self.prior = overhead_per_frame
        self.overheads: list[tuple[float, int]] = []  # (seconds besides the fit, frames) per GOP done
        self.given: float | None = None

    def overhead_per_frame(self) -> float:
        """Seconds a frame costs besides its GOP's fit: measured once a GOP is done."""
        if not self.overheads:
            return self.prior
        return sum(s for s, _ in self.overheads) / sum(f for _, f in self.overheads)

    def next(self, frames: int) -> float | None:
        """Seconds for the fit of the next GOP, of `frames` frames (None: no time budget)."""
        if self.seconds is None:
            return None
        left = self.seconds - (self.clock() - self.started)
        fair = (left - self.overhead_per_frame() * self.frames_left) * frames / max(self.frames_left, 1)
        self.given = max(fair, 0.25 * self.seconds * frames / max(self.frames_todo, 1), 1e-3)
        return self.given

    def done(self, frames: int) -> None:
        """A GOP of `frames` frames is finished and stored."""
        now = self.clock()
        if self.given is not None:
            self.overheads.append((max(now - self.mark - self.given, 0.0), frames))
        self.mark, self.given = now, None
        self.frames_left -= frames


@dataclass
class GopTask:
    """One GOP as an independent job (a pool process or a Ray task): it reads its own frames."""

    index: int
    path: str
    read: ReadOptions  # start and max_frames select this GOP's frames
    meta: dict
    opts: FitOptions
    exp: ExportOptions
    bpp: float | None
    device: str
    probed: MediaInfo | None = None  # the source's probe, so a task does not count its frames again
    threads: int | None = None
    bits_per_param: float | None = None  # the bpp rate control's first guess


def run_gop(task: GopTask) -> tuple[int, bytes, dict]:
    """(index, the GOP's version-1 file, its quality report), for a pool or a Ray worker."""
    from inr.device import select_device, torch_threads
    from inr.memory import return_freed_memory

    return_freed_memory()  # a pool or Ray worker is a process of its own
    with torch_threads(task.threads):
        device = select_device(task.device)
        chunk = next(read_chunks(task.path, task.read, [task.read.max_frames], task.probed))
        blob = _encode_one(chunk, task.meta, task.opts, None, task.exp, task.bpp, device, None, None, task.bits_per_param)
        return task.index, blob, _measure(blob, chunk, device)


def _store(work: Path, i: int, blob: bytes, report: dict) -> None:
    """Keep a finished GOP (the file first: a GOP counts as done once its report exists)."""
    with atomic_path(work / f"gop_{i:05d}.inr") as tmp:
        tmp.write_bytes(blob)
    write_json(work / f"gop_{i:05d}.json", report)


def _finished(work: Path, i: int) -> bool:
    return (work / f"gop_{i:05d}.inr").is_file() and (work / f"gop_{i:05d}.json").is_file()


def _encode_gops(path, out: Path, opts, exp, read, device, bpp, gops: GopOptions, plan: GopPlan, info: MediaInfo, size, callback, phase, progress, rate_hint=None) -> dict:
    work = _prepare_work(out, _settings(path, opts, exp, read, bpp, gops, plan), gops.resume)
    total, n = sum(plan.lengths), len(plan.lengths)
    meta = video_meta(path, info.fps, read)
    t0 = time.perf_counter()
    progress(0, n)
    if (gops.workers or 1) > 1 or gops.ray:
        tasks = [
            GopTask(i, str(path), dataclasses.replace(read, start=read.start + s, max_frames=f), meta, gop_share(opts, f, total), exp, bpp, str(device), info, None, rate_hint)
            for i, (s, f) in enumerate(zip(plan.starts, plan.lengths))
            if not _finished(work, i)
        ]
        done = n - len(tasks)
        for i, blob, report in _run_parallel(tasks, gops):
            _store(work, i, blob, report)
            done += 1
            progress(done, n)
    else:
        warm: dict | None = None
        todo = [i for i in range(n) if not _finished(work, i)]
        clock = TimeShare(opts.fit.seconds, sum(plan.lengths[i] for i in todo), total, overhead_per_frame=OVERHEAD_SECONDS_PER_PIXEL * size[0] * size[1])
        for i, chunk in enumerate(read_chunks(path, read, plan.lengths, info)):
            if _finished(work, i):  # finished before an interruption
                blob = (work / f"gop_{i:05d}.inr").read_bytes()
            else:
                share = gop_share(opts, len(chunk), total)
                share = dataclasses.replace(share, fit=dataclasses.replace(share.fit, seconds=clock.next(len(chunk))))
                blob = _encode_one(chunk, meta, share, warm, exp, bpp, device, callback, phase, rate_hint)
                gc.collect()  # the fit's model, optimizer and task sit in reference cycles: free them before the next GOP
                _store(work, i, blob, _measure(blob, chunk, device))
                clock.done(len(chunk))
            if gops.warm_start:
                warm = decode_model(blob)[2].stored_weights()
            progress(i + 1, n)
    missing = [i for i in range(n) if not _finished(work, i)]
    if missing:
        raise InrError(f"{path}: ffmpeg gave fewer frames than probed; {n - len(missing)} of {n} GOPs encoded")
    done_files = [work / f"gop_{i:05d}.inr" for i in range(n)]
    encode_seconds = time.perf_counter() - t0
    if opts.fit.seconds is not None and encode_seconds > 1.15 * opts.fit.seconds:
        log.warning(
            "the encode took %.0f s of a %.0f s budget: reading, decoding and scoring each of %d GOPs cost more than the budget left their fits",
            encode_seconds, opts.fit.seconds, n,
        )
    reports = [json.loads((work / f"gop_{i:05d}.json").read_text()) for i in range(n)]
    header = json.loads(json.dumps({**meta, "source": Path(path).name}))
    signal = {"kind": "video", "shape": [total, size[0], size[1], 3], **header}
    with atomic_path(out) as tmp:
        with tmp.open("wb") as f:
            f.write(gopfile.index_bytes(signal, opts.model, plan.lengths, [p.stat().st_size for p in done_files], {"warm_start": gops.warm_start}))
            for p in done_files:
                f.write(p.read_bytes())
    report = _report(out, opts, exp, plan, reports, encode_seconds, device, size)
    write_json(Path(str(out) + ".json"), report)
    shutil.rmtree(work, ignore_errors=True)
    return report


def _run_parallel(tasks: list[GopTask], gops: GopOptions) -> Iterator[tuple[int, bytes, dict]]:
    """Finished GOPs in completion order: Ray tasks (`gops.ray`: 'local', 'auto' or an
    address; a GPU per task where the cluster has GPUs) or a local process pool."""
    if gops.ray:
        try:
            import ray
        except ImportError:
            raise InrError("--ray needs Ray: pip install 'inr-codec[ray]'") from None
        ray.init(address=None if gops.ray == "local" else gops.ray, ignore_reinit_error=True, log_to_driver=False)
        remote = ray.remote(num_gpus=1 if ray.cluster_resources().get("GPU", 0) else 0)(run_gop)
        pending = [remote.remote(t) for t in tasks]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
        return
    ctx = get_context("spawn")  # fork + torch threads deadlock; spawn starts clean interpreters
    threads = max(1, (os.cpu_count() or 1) // gops.workers)  # the cores split between workers
    with ProcessPoolExecutor(max_workers=gops.workers, mp_context=ctx) as pool:
        futures = [pool.submit(run_gop, dataclasses.replace(t, threads=threads)) for t in tasks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _encode_one(chunk: torch.Tensor, meta: dict, opts: FitOptions, warm, exp, bpp, device, callback, phase, rate_hint=None) -> bytes:
    signal = video_signal(chunk, **meta)
    opts = dataclasses.replace(opts, warm_start=warm)
    if bpp is not None:
        return encode_to_bpp(signal, opts, exp, bpp, device, callback=callback, phase=phase, bits_per_param=rate_hint)[0].data
    return encode_signal(signal, opts, exp, device, callback=callback, phase=phase).data


def _measure(blob: bytes, original: torch.Tensor, device: torch.device) -> dict:
    """Quality of what this GOP decodes to, as the single-clip report measures it."""
    q, _, seconds = measure_decoded(blob, original, "video", device)
    return {"frames": int(original.shape[0]), "bytes": len(blob), "decode_seconds": seconds, **q}


def _report(out: Path, opts, exp, plan: GopPlan, reports: list[dict], encode_seconds: float, device, size) -> dict:
    frames = sum(r["frames"] for r in reports)
    data_bytes = out.stat().st_size
    decode_seconds = sum(r["decode_seconds"] for r in reports)
    per_frame = [p for r in reports for p in r["per_frame_psnr"]]
    per_frame_y = [p for r in reports for p in r["per_frame_psnr_y"]]
    return {
        "file": str(out),
        "model": opts.model,
        "bytes": data_bytes,
        "bpp": data_bytes * 8 / (frames * size[0] * size[1]),
        "psnr": float(np.mean(per_frame)),
        "psnr_y": float(np.mean(per_frame_y)),
        "msssim": float(sum(r["msssim"] * r["frames"] for r in reports) / frames),
        "per_frame_psnr": per_frame,
        "per_frame_psnr_y": per_frame_y,
        "encode_seconds": encode_seconds,
        "decode_seconds": decode_seconds,
        "decode_fps": frames / decode_seconds,
        "bits": exp.bits,
        "prune": exp.prune,
        "width": size[1],
        "height": size[0],
        "frames": frames,
        "device": str(device),
        "gops": [{"start": s, "frames": r["frames"], "bytes": r["bytes"], "psnr": r["psnr"]} for s, r in zip(plan.starts, reports)],
        "estimated_peak_bytes": plan.peak_bytes,
    }


# ------------------------------------------------------------------ decoding
def parse_frames(text: str | None, total: int) -> tuple[int, int]:
    """'a:b' -> frames a .. b - 1 (Python slice rules without steps or negatives; 'a:' runs to
    the end, ':b' starts at 0, 'a' is the one frame a); None -> the whole clip."""
    if text is None:
        return 0, total
    parts = str(text).split(":")
    try:
        if len(parts) == 1:
            a = int(parts[0])
            b = a + 1
        elif len(parts) == 2:
            a = int(parts[0]) if parts[0].strip() else 0
            b = int(parts[1]) if parts[1].strip() else total
        else:
            raise ValueError
    except ValueError:
        raise InrError(f"--frames expects A:B (frames A to B-1), got '{text}'") from None
    if not 0 <= a < b <= total:
        raise InrError(f"--frames {text} is outside the clip's {total} frames (0:{total})")
    return a, b


def decode_video(path: Path | str, out: Path | str, device: torch.device, frames: str | None = None, lossless: bool = False) -> dict:
    """Decode a file (either format version) to a video or PNG folder, streaming GOP by GOP;
    `frames` ('a:b') decodes only the GOPs holding those frames."""
    path = Path(path)
    if not path.is_file():
        raise InrError(f"{path}: no such file")
    index = gopfile.open_index(path)
    if index.header["signal"]["kind"] != "video":
        if frames is not None:
            raise InrError("--frames applies to videos; this file holds an image")
        return decode_file(path, out, device, lossless)
    start, stop = parse_frames(frames, index.frames)
    _, height, width, _ = index.shape
    needed = index.covering(start, stop)
    t0 = time.perf_counter()
    with FrameSink(out, width, height, fps=index.header["signal"].get("fps", 25.0), lossless=lossless) as sink:
        for chunk in gopfile.decode_range(path, start, stop, device):
            sink.write(to_uint8(chunk))
    seconds = time.perf_counter() - t0
    return {
        "output": str(out),
        "kind": "video",
        "frames": stop - start,
        "first": start,
        "gops_decoded": len(needed),
        "gops": len(index.gops),
        "decode_seconds": seconds,
        "decode_fps": (stop - start) / seconds,
    }


def inspect(path: Path | str) -> dict:
    """`inr info`: a version-1 file's header and byte breakdown, or a GOP file's index with
    every GOP's frame range and bytes (and the first GOP's own breakdown); both list `gops`."""
    path = Path(path)
    if not path.is_file():
        raise InrError(f"{path}: no such file")
    index = gopfile.open_index(path)
    gops = [{"start": g.start, "frames": g.frames, "bytes": g.size} for g in index.gops]
    if index.version == 1:
        return {**inspect_file(path), "version": 1, "gops": gops}
    breakdown = {"preamble": gopfile.PREAMBLE.size, "index": index.index_bytes - gopfile.PREAMBLE.size}
    breakdown |= {f"gop:{i}": g.size for i, g in enumerate(index.gops)}
    with path.open("rb") as f:
        first = bitstream_info(gopfile.read_payload(f, index.gops[0]))
    return {"bytes": path.stat().st_size, "accounted": sum(breakdown.values()), "breakdown": breakdown, "header": index.header, "version": 2, "gops": gops, "first_gop": first}
