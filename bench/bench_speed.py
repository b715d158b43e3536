"""Training step time per family with the speed-ups on vs plain fp32 eager, this machine.

    python bench/bench_speed.py [--models siren,poly,ffn,hashgrid,nerv,nervpp,hnerv]
        [--params 0.15M] [--steps 10] [--rounds 5] [--warmup 3] [--ablate] [--compile]
        [--plus 'amp;compile;amp,compile']

Same process, same batches: every variant of a family starts from a copy of one initial
model and draws the same batch sequence; the variants take turns, `--steps` steps each per
round, so load on a shared machine hits them alike, and the median round is reported.
`--plus` adds the default plan with knobs it leaves off forced on (`on+amp`, ...): what a
speed-up the defaults refuse (bf16 on a family it costs quality) would have bought.
Variants: `off` (fp32, NCHW, per-parameter Adam, eager), `on` (the defaults of
`inr.device.speed_plan` for this device and family, plus torch.compile with --compile) and,
with --ablate, each knob alone on top of `off`. The NeRV families fit Bunny 320x160x32 (the
bundled clip, cropped as in HNeRV); coordinate families fit the bundled 256x256 image with
the default batch. `loss` (after the same steps) is a sanity check, not a quality claim:
quality per epoch is bench_video's job. `gflop_per_s` is the step's matmul and convolution
work (FlopCounterMode, forward and backward) over its time, printed beside a 2048^3 matmul's
rate in fp32 and bf16: a family whose fp32 eager step already runs at over half the fp32
matmul rate cannot be made 2x faster in fp32 by any plan.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

from common import ROOT, print_table, write_json  # noqa: I001
import torch
from torch.utils.flop_counter import FlopCounterMode

from inr.device import select_device, synchronize
from inr.fit import FitConfig, Trainer
from inr.models import get_spec, parse_param_budget
from inr.models.sizing import stored_params
from inr.pipeline import FitOptions, build_model
from inr.signals import image_signal, video_signal
from video.media import ReadOptions, load_image, parse_size, read_media

ASSETS = ROOT / "inr" / "assets"
OFF = {"amp": False, "channels_last": False, "fused_adam": False, "compile": False, "input_cache": False}
KNOBS = ("amp", "channels_last", "fused_adam", "input_cache")


def variants(ablate: bool, compile_on: bool, plus: list[list[str]] | None = None) -> dict[str, dict]:
    on = {"amp": None, "channels_last": None, "fused_adam": None, "input_cache": None, "compile": compile_on}
    out = {"off": OFF, "on": on}
    if ablate:
        out.update({f"+{k}": {**OFF, k: True} for k in KNOBS})
        if compile_on:
            out["+compile"] = {**OFF, "compile": True}
    for knobs in plus or []:  # the default plan with knobs forced on (what the defaults leave off, and why)
        out["on+" + "+".join(knobs)] = {**on, **{k: True for k in knobs}}
    return out


def step_gflop(trainer: Trainer) -> float:
    """Matmul and convolution work of one training step (forward and backward), counted by
    torch's FlopCounterMode on a copy of the trainer (the timed ones keep their batch
    sequence). It is the same whatever the speed plan, and against the step time it says how
    close a family runs to the machine's arithmetic peak: how much any fp32 plan could gain."""
    counter = FlopCounterMode(display=False)
    with counter:
        copy.deepcopy(trainer).step_once()
    return counter.get_total_flops() / 1e9


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of one large square matmul: the ceiling a training step is read against."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    a @ b
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def bench_family(name: str, signal, budget: int, args, device: torch.device) -> list[dict]:
    spec = get_spec(name)
    cfg, model = build_model(spec, signal, budget, None, seed=0)
    total = args.warmup + args.rounds * args.steps
    trainers: dict[str, Trainer] = {}
    plus = [k.split(",") for k in args.plus.split(";")] if args.plus else None
    for label, knobs in variants(args.ablate, args.compile, plus).items():
        opts = FitOptions(model=name, params=budget, fit=FitConfig(steps=total, seed=0, **knobs))
        m = copy.deepcopy(model).to(device)
        tr = Trainer(m, m.make_task(signal, device, opts), opts.fit, spec.optim, device)
        if any(tr.speed == other.speed for other in trainers.values()):
            continue  # e.g. channels-last on an MLP, or a knob the default already has: nothing new to measure
        trainers[label] = tr
    for tr in trainers.values():  # warm-up: first-call allocations, oneDNN primitives, compilation
        for _ in range(args.warmup):
            tr.step_once()
        synchronize(device)
    gflop = step_gflop(trainers["off"])
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for _ in range(args.rounds):
        for label, tr in trainers.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                tr.step_once()
            synchronize(device)
            times[label].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(times["off"])
    rows = []
    for label, tr in trainers.items():
        ms = statistics.median(times[label])
        rows.append(
            {
                "model": name,
                "variant": label,
                "plan": ",".join(k for k in (*KNOBS, "compile") if getattr(tr.speed, k)) or "fp32 eager",
                "params": stored_params(spec, cfg),
                "ms_per_step": round(1000 * ms, 2),
                "speedup": round(base / ms, 2),
                "gflop_per_step": round(gflop, 3),
                "gflop_per_s": round(gflop / ms, 1),
                "loss": round(tr.state.loss, 6),
                "round_ms": [round(1000 * t, 2) for t in times[label]],
            }
        )
        print(f"  {name:8s} {label:15s} {rows[-1]['ms_per_step']:9.2f} ms/step  x{rows[-1]['speedup']:.2f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="siren,poly,ffn,hashgrid,nerv,nervpp,hnerv")
    ap.add_argument("--params", default="0.15M")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--ablate", action="store_true", help="also time each speed-up alone")
    ap.add_argument("--compile", action="store_true", help="include torch.compile in `on` (slow to start)")
    ap.add_argument("--plus", default="", help="extra variants: the default plan with these knobs forced on, e.g. 'amp;amp,compile'")
    ap.add_argument("--video", default=str(ASSETS / "bunny_320x180_32f.mp4"))
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--crop", default="320x160")
    ap.add_argument("--image", default=str(ASSETS / "bunny_256.png"))
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--name", default="speed")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    budget = parse_param_budget(args.params)
    names = args.models.split(",")
    signals = {}
    video_only = {n: "image" not in get_spec(n).signals for n in names}  # the NeRV family: a clip; others: an image
    if any(video_only.values()):
        frames, _ = read_media(Path(args.video), ReadOptions(max_frames=args.frames, crop=parse_size(args.crop, "crop")))
        signals["frame"] = video_signal(frames)
    if not all(video_only.values()):
        signals["coord"] = image_signal(load_image(Path(args.image)))
    peak = {str(dt).removeprefix("torch."): round(matmul_peak(device, dt), 1) for dt in (torch.float32, torch.bfloat16)}
    print(f"matmul 2048^3 on {device}: " + ", ".join(f"{k} {v} GFLOP/s" for k, v in peak.items()), flush=True)
    rows = []
    for n in names:
        rows += bench_family(n, signals["frame" if video_only[n] else "coord"], budget, args, device)
    print_table(rows, ["model", "variant", "plan", "params", "ms_per_step", "speedup", "gflop_per_s", "loss"])
    shapes = {k: list(s.data.shape) for k, s in signals.items()}
    write_json(args.name, {"args": vars(args), "device": str(device), "matmul_gflop_per_s": peak, "signals": shapes, "results": rows})


if __name__ == "__main__":
    main()
