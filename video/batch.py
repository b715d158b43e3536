"""`inr batch`: compress every video under a folder, resumably, locally or on a Ray cluster.

OUT_DIR mirrors the input tree (a/b/clip.mp4 -> OUT_DIR/a/b/clip.inr). `manifest.csv` is
rewritten atomically after every finished file, so a crash or Ctrl-C loses at most the files
in flight; their `.inr` is never half-written (each is written to a temp name and renamed).
A re-run skips files whose manifest row is `done` and whose `.inr` exists, and first removes
temp files (`.name.XXXX.part.ext`) that a kill between write and rename left behind.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable

from inr.errors import InrError
from video.media import VIDEO_EXTS, atomic_path

MANIFEST_FIELDS = ["input", "output", "bytes", "bpp", "psnr", "msssim", "seconds", "status", "error"]


@dataclass
class BatchJob:
    input: str
    output: str
    model: str
    bpp: float | None
    params: str | None
    epochs: int | None
    seconds: float | None
    bits: int = 8
    seed: int = 0
    max_frames: int | None = None
    resize: str | None = None
    threads: int | None = None
    device: str = "auto"


def find_videos(root: Path, recursive: bool) -> list[Path]:
    if not root.is_dir():
        raise InrError(f"{root}: not a folder")
    it: Iterable[Path] = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in VIDEO_EXTS and not p.name.startswith("."))


# atomic_path's temp names: "." + stem + "." + mkstemp's random part + ".part" + suffix
PART_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]+\.part(\.[^./]+)?$")


def clean_partials(out_dir: Path) -> list[Path]:
    """Delete leftover temp files of an interrupted run under out_dir; returns them.

    Only names atomic_path makes are touched, so a user's own files in out_dir are safe. Two
    batches writing into one folder at once are not supported (they would race anyway)."""
    removed = []
    for path in Path(out_dir).rglob(".*.part*"):
        if path.is_file() and PART_FILE.match(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read_manifest(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {row["input"]: row for row in csv.DictReader(f)}


def write_manifest(path: Path, rows: dict[str, dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for key in sorted(rows):
        writer.writerow(rows[key])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def encode_job(job: BatchJob, progress: Callable[[float], None] | None = None) -> dict:
    """Run one file; never raises for a bad input: the error goes into the manifest row."""
    from inr.device import select_device, torch_threads
    from inr.export.compress import ExportOptions
    from inr.models import parse_param_budget
    from inr.options import fit_options
    from video.gop_encode import GopOptions, encode_video
    from video.media import ReadOptions, media_kind, parse_size

    with torch_threads(job.threads):  # restored after: a library call leaves the caller's setting alone
        t0 = time.perf_counter()
        row = {"input": job.input, "output": job.output, "status": "failed", "error": ""}
        try:
            params = parse_param_budget(job.params) if job.params else None
            # no batch_size: each family's own default (a coordinate model's is thousands of coordinates)
            opts = fit_options(job.model, media_kind(Path(job.input)), epochs=job.epochs, seconds=job.seconds, params=params, seed=job.seed)
            read = ReadOptions(max_frames=job.max_frames, resize=parse_size(job.resize, "resize"))

            gop_state = {"done": 0, "total": 1}  # a long video is encoded in groups of frames

            def cb(state) -> None:
                if progress is not None:
                    progress((gop_state["done"] + state.progress) / gop_state["total"])

            def on_gop(done: int, total: int) -> None:
                gop_state.update(done=done, total=total)

            rep = encode_video(
                job.input, job.output, opts, ExportOptions(bits=job.bits), read, select_device(job.device), bpp=job.bpp,
                gops=GopOptions(workers=1), callback=cb, progress=on_gop,  # the batch already runs files in parallel
            )
            row.update({k: rep[k] for k in ("bytes", "bpp", "psnr", "msssim")}, status="done")
        except InrError as exc:
            row["error"] = str(exc)
        except Exception as exc:  # one bad file must not stop the batch; keep the reason
            row["error"] = f"{type(exc).__name__}: {exc}"
            row["traceback"] = traceback.format_exc(limit=3)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def _pool_worker(job: BatchJob, queue) -> dict:
    last = [0.0]

    def progress(p: float) -> None:
        now = time.monotonic()
        if now - last[0] > 0.25 or p >= 1:
            last[0] = now
            queue.put((job.input, p))

    return encode_job(job, progress)


def plan(in_dir: Path, out_dir: Path, recursive: bool, manifest: dict[str, dict], make_job) -> tuple[list[BatchJob], list[str]]:
    jobs, skipped = [], []
    for src in find_videos(in_dir, recursive):
        rel = src.relative_to(in_dir)
        dst = out_dir / rel.with_suffix(".inr")
        row = manifest.get(str(src))
        if row and row.get("status") == "done" and dst.is_file():
            skipped.append(str(src))
            continue
        jobs.append(make_job(str(src), str(dst)))
    return jobs, skipped


def _silent(event: str, name: str, value: float = 0.0) -> None:
    """Default progress hook; front ends pass their own (event: plan/start/progress/done)."""


def run_batch(
    in_dir: Path | str,
    out_dir: Path | str,
    make_job: Callable[[str, str], BatchJob],
    recursive: bool = False,
    workers: int = 1,
    ray_address: str | None = None,
    report: Callable[[str, str, float], None] = _silent,
) -> dict:
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_partials(out_dir)
    manifest_path = out_dir / "manifest.csv"
    rows = read_manifest(manifest_path)
    jobs, skipped = plan(in_dir, out_dir, recursive, rows, make_job)
    report("plan", f"{len(jobs)} to do, {len(skipped)} already done", float(len(jobs)))

    def finish(row: dict) -> None:
        rows[row["input"]] = row
        write_manifest(manifest_path, rows)
        report("done", row["input"], 1.0 if row["status"] == "done" else 0.0)

    if ray_address:
        _run_ray(jobs, ray_address, finish, report)
    elif workers <= 1:
        for job in jobs:
            report("start", job.input, 0.0)
            finish(encode_job(job, lambda p, name=job.input: report("progress", name, p)))
    else:
        _run_pool(jobs, workers, finish, report)
    summary = summarize(rows)
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    _write_summary_md(out_dir / "summary.md", summary, rows)
    return summary


def _run_pool(jobs: list[BatchJob], workers: int, finish, report) -> None:
    ctx = get_context("spawn")  # fork + torch threads deadlock; spawn starts clean interpreters
    threads = max(1, (os.cpu_count() or 1) // workers)  # no oversubscription: cores split between workers
    with ctx.Manager() as manager:
        queue = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures: dict[Future, BatchJob] = {}
            for job in jobs:
                job.threads = threads
                futures[pool.submit(_pool_worker, job, queue)] = job
                report("start", job.input, 0.0)
            try:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                    while not queue.empty():
                        name, p = queue.get()
                        report("progress", name, p)
                    for fut in done:
                        finish(fut.result())
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)
                raise


def _run_ray(jobs: list[BatchJob], address: str, finish, report) -> None:
    try:
        import ray
    except ImportError:
        raise InrError("--ray needs Ray: pip install 'inr-codec[ray]'") from None
    ray.init(address=None if address == "local" else address, ignore_reinit_error=True, log_to_driver=False)
    gpus = ray.cluster_resources().get("GPU", 0)
    remote = ray.remote(num_gpus=1 if gpus else 0)(encode_job)
    refs = {remote.remote(job): job for job in jobs}
    for job in jobs:
        report("start", job.input, 0.0)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        finish(ray.get(done[0]))


def summarize(rows: dict[str, dict]) -> dict:
    done = [r for r in rows.values() if r.get("status") == "done"]
    failed = [r for r in rows.values() if r.get("status") != "done"]

    def mean(key):
        vals = [float(r[key]) for r in done if r.get(key) not in (None, "")]
        return sum(vals) / len(vals) if vals else None

    return {
        "files": len(rows),
        "done": len(done),
        "failed": len(failed),
        "total_bytes": sum(int(float(r["bytes"])) for r in done if r.get("bytes") not in (None, "")),
        "mean_bpp": mean("bpp"),
        "mean_psnr": mean("psnr"),
        "mean_msssim": mean("msssim"),
        "failures": {r["input"]: r.get("error", "") for r in failed},
    }


def _write_summary_md(path: Path, summary: dict, rows: dict[str, dict]) -> None:
    lines = [
        "# inr batch summary",
        "",
        f"{summary['done']} of {summary['files']} files done, {summary['failed']} failed; {summary['total_bytes']} bytes in all.",
        "",
        "| input | status | bytes | bpp | PSNR | MS-SSIM | seconds | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(rows):
        r = rows[key]
        fmt = lambda v: f"{float(v):.4g}" if v not in (None, "") else ""  # noqa: E731
        lines.append(f"| {key} | {r.get('status')} | {r.get('bytes', '')} | {fmt(r.get('bpp'))} | {fmt(r.get('psnr'))} | {fmt(r.get('msssim'))} | {r.get('seconds', '')} | {r.get('error', '')} |")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")

