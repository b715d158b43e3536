"""Long videos in groups of frames (issue 11): memory, time, quality, seeking, warm start.

    python bench/bench_gop.py [--size 1920x1080] [--frames 600] [--seconds 600] [--bpp 0.02]
                              [--model auto] [--gop N] [--rss-frames 150,300,600,1200]
                              [--rss-steps 2] [--out gop]

The source is the shared Big Buck Bunny clip (../shared/media/bigbuckbunny.mp4) scaled to
`--size` and looped to the frame count by ffmpeg, H.264 CRF 12 (made once, cached in
`--work`). Every encode and decode runs the real CLI in a child process; its peak RSS is the
child's own maximum resident set (os.wait4; the ffmpeg processes it pipes through are
separate processes and not included). Rows:

- `end-to-end`: `inr encode` of `--frames` frames with `--seconds` in total, then `inr decode`
  to mp4: peak RSS, wall time, PSNR / bpp (from the encoder's report, measured on the decoded
  file);
- `rss@N`: encode + decode of N frames with a fixed tiny step budget (`--rss-steps` a GOP):
  memory should stay flat as N grows;
- `seek`: decoding 10 frames from the middle of the end-to-end file vs decoding all of it
  (in process, model parsing and video writing included; best of 2 after a warm-up; with
  `--full-decode-runs 0` the full decode is the end-to-end row's `inr decode`, process start
  included: at 1080p a full decode takes a quarter of an hour);
- `warm` / `cold`: the same encode with `--warm-model` (default hnerv; the rate-aware grid's
  GOPs always start cold) with and without warm-starting each GOP from the previous one, at
  equal total `--seconds` (`--warm-model none` skips them).

`--rss-size` runs the RSS rows at another size than the end-to-end row (their point is how
memory grows with the length). `--reuse-encode` decodes and seeks the end-to-end file an
earlier run left in `--work` (its row then has the encoder's own time and no peak RSS).

`--rows` picks which rows run (default all; `--rows warm` runs the warm/cold pair alone).

Heavy at the defaults (hours on 2 cores); `--size 96x64 --frames 24 --rss-frames 12,24
--seconds 6 --gop 8 --bpp 0.3 --warm-model siren --out gop_tiny` checks the script in a minute.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import ROOT, print_table, write_json  # noqa: I001
from inr.device import select_device
from video.ffmpeg_bin import ffmpeg_exe
from video.gop_encode import decode_video

ROWS = {"end-to-end", "rss", "seek", "warm"}
SOURCE = ROOT.parent / "shared" / "media" / "bigbuckbunny.mp4"  # beside the checkout (see --source)


def make_clip(work: Path, size: str, frames: int, source: Path) -> Path:
    """The source scaled to `size` and looped to `frames` frames (cached)."""
    w, h = size.lower().split("x")
    out = work / f"bunny_{w}x{h}_{frames}f.mp4"
    if not out.is_file():
        tmp = out.with_suffix(".part.mp4")
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source), "-vf", f"scale={w}:{h}:flags=bicubic",
             "-frames:v", str(frames), "-an", "-c:v", "libx264", "-crf", "12", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(tmp)],
            check=True,
        )
        os.replace(tmp, out)
    return out


def run_cli(args: list[str]) -> dict:
    """One `inr` command in a child process: wall seconds and the child's peak RSS (MiB)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1))}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "-q", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"inr {' '.join(args)} failed ({proc.returncode}): {err.splitlines()[-1] if err else ''}")
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def encode(src: Path, out: Path, args, extra: list[str], model: str | None = None) -> dict:
    cmd = ["encode", str(src), "-o", str(out), "--model", model or args.model, "--bpp", str(args.bpp)] + (["--gop", str(args.gop)] if args.gop else [])
    res = run_cli(cmd + extra)
    report = json.loads(Path(str(out) + ".json").read_text())
    return {**res, "psnr": round(report["psnr"], 3), "bpp": round(report["bpp"], 5), "gops": len(report.get("gops", [])) or 1}


def timed_decode(path: Path, out: Path, frames: str | None, device) -> float:
    t0 = time.perf_counter()
    decode_video(path, out, device, frames=frames)
    return round(time.perf_counter() - t0, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=str(SOURCE), help="the clip to scale and loop")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--seconds", type=float, default=600.0, help="total encode budget of the end-to-end and warm/cold rows")
    ap.add_argument("--bpp", type=float, default=0.02)
    ap.add_argument("--model", default="auto")
    ap.add_argument("--gop", type=int, help="frames per GOP (default: the encoder's choice)")
    ap.add_argument("--warm-model", default="hnerv", help="family of the warm/cold rows (grid GOPs always start cold)")
    ap.add_argument("--rss-frames", default="150,300,600,1200")
    ap.add_argument("--rss-steps", type=int, default=2, help="steps per GOP in the RSS rows")
    ap.add_argument("--rss-size", help="size of the RSS rows (default: --size)")
    ap.add_argument("--full-decode-runs", type=int, default=2, help="in-process full decodes for the seek row (0: the end-to-end decode)")
    ap.add_argument("--work", default=str(ROOT / "bench" / "work_gop"))
    ap.add_argument("--out", default="gop", help="results name: bench/results/NAME.json")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rows", default=",".join(sorted(ROWS)), help="rows to run (seek reads the end-to-end row's file)")
    ap.add_argument("--reuse-encode", action="store_true", help="decode and seek the end-to-end file of an earlier run instead of encoding again")
    args = ap.parse_args()
    wanted = {r.strip() for r in args.rows.split(",") if r.strip()}
    if unknown := wanted - ROWS:
        ap.error(f"unknown rows: {', '.join(sorted(unknown))} (known: {', '.join(sorted(ROWS))})")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    device = select_device(args.device)
    rows = []

    src = make_clip(work, args.size, args.frames, Path(args.source))
    main_file = work / "main.inr"
    dec = None
    if "end-to-end" in wanted:
        if args.reuse_encode and Path(str(main_file) + ".json").is_file():
            # the file of an earlier run whose decode step failed: its encoder's own report (the
            # encode's wall time without process start; its peak RSS was not kept)
            report = json.loads(Path(str(main_file) + ".json").read_text())
            enc = {"wall_s": round(report["encode_seconds"], 2), "peak_rss_mib": None, "psnr": round(report["psnr"], 3), "bpp": round(report["bpp"], 5),
                   "gops": len(report.get("gops", [])) or 1, "reused": True}
        else:
            enc = encode(src, main_file, args, ["--seconds", str(args.seconds)])
            print({"row": "encode", **enc}, flush=True)  # kept in the log should the decode fail
        dec = run_cli(["decode", str(main_file), "-o", str(work / "main.mp4")])
        rows.append({"row": "end-to-end", "frames": args.frames, **enc, "decode_wall_s": dec["wall_s"], "decode_rss_mib": dec["peak_rss_mib"]})
        print(rows[-1], flush=True)

    for n in [int(v) for v in args.rss_frames.split(",") if v.strip()] if "rss" in wanted else []:
        clip, out = make_clip(work, args.rss_size or args.size, n, Path(args.source)), work / f"rss_{n}.inr"
        gops = -(-n // (args.gop or 1)) if args.gop else None
        steps = args.rss_steps * (gops or 1)  # --steps is the clip's total, shared among GOPs
        e = encode(clip, out, args, ["--steps", str(steps)])
        d = run_cli(["decode", str(out), "-o", str(work / f"rss_{n}.mp4")])
        rows.append({"row": f"rss@{n} {args.rss_size or args.size}", "frames": n, **e, "decode_wall_s": d["wall_s"], "decode_rss_mib": d["peak_rss_mib"]})
        print(rows[-1], flush=True)

    if "seek" in wanted:
        if not main_file.is_file():
            sys.exit(f"bench_gop: the seek row reads {main_file}: run the end-to-end row first")
        mid = max(args.frames // 2 - 5, 0)
        timed_decode(main_file, work / "warmup/", "0:1", device)  # imports and first-call costs out of the timings
        seek = min(timed_decode(main_file, work / "seek/", f"{mid}:{mid + min(10, args.frames)}", device) for _ in range(2))
        if args.full_decode_runs or dec is None:
            full, source = min(timed_decode(main_file, work / "full.mp4", None, device) for _ in range(max(args.full_decode_runs, 1))), "in process"
        else:
            full, source = dec["wall_s"], "end-to-end inr decode"
        rows.append({"row": "seek 10 mid", "frames": min(10, args.frames), "wall_s": seek, "full_decode_s": full, "full_decode_from": source})
        print(rows[-1], flush=True)

    warm_minus_cold = None
    if args.warm_model != "none" and "warm" in wanted:
        for label, extra in (("warm", []), ("cold", ["--no-warm-start", "--workers", "1"])):
            r = encode(src, work / f"{label}.inr", args, ["--seconds", str(args.seconds), *extra], args.warm_model)
            rows.append({"row": f"{label} {args.warm_model}", "frames": args.frames, **r})
            print(rows[-1], flush=True)
        warm_minus_cold = round(rows[-2]["psnr"] - rows[-1]["psnr"], 3)
        print(f"warm - cold at equal time: {warm_minus_cold:+.2f} dB")

    print_table(rows, ["row", "frames", "gops", "wall_s", "peak_rss_mib", "decode_wall_s", "decode_rss_mib", "full_decode_s", "psnr", "bpp"])
    write_json(args.out, {"args": vars(args), "threads": torch.get_num_threads(), "warm_minus_cold_db": warm_minus_cold, "results": rows})


if __name__ == "__main__":
    main()
