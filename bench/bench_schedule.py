"""Which learning-rate schedule learns fastest in a short CPU budget, per family.

    python bench/bench_schedule.py [--models siren,poly,ffn,hashgrid,nerv,nervpp,hnerv,grid]
        [--steps 150] [--frames 32]

Tuned on carphone (shared media), never on the Bunny clip the README's headline reports:
the video families fit its first `--frames` frames at 176x144, the coordinate families its
first frame as an image, the `grid` family the clip at `--bpp`. Every candidate of a family
starts from the same initial model and draws the same batches for the same number of
steps (`--steps`, or `--epochs` for the frame families), so the final PSNR compares
schedules and nothing else, whatever the load on the machine. The best candidate is what
`inr/models/schedules.py` takes as the family's `fast` schedule; `paper` is listed beside it.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
from pathlib import Path

from common import ROOT, print_table, write_json  # noqa: I001
import torch

from inr.device import select_device
from inr.export.grid_codec import RateTarget, encode_rate_aware
from inr.fit import FitConfig, Trainer
from inr.models import get_spec, parse_param_budget
from inr.models.registry import Schedule
from inr.pipeline import FitOptions, build_model
from inr.signals import image_signal, video_signal
from video.media import ReadOptions, read_media

CARPHONE = ROOT.parent / "shared" / "media" / "carphone_pristine.mp4"

# Candidates around the papers' Adam settings: the peak rate, the warm-up and the floor are
# the three knobs a short budget is sensitive to.
CANDIDATES: dict[str, dict] = {
    "default": {},
    "lr x0.5": {"lr_scale": 0.5},
    "lr x2": {"lr_scale": 2.0},
    "lr x4": {"lr_scale": 4.0},
    "lr x8": {"lr_scale": 8.0},
    "warmup 10%": {"warmup": 0.1, "start": 0.1},
    "floor 0.1": {"floor": 0.1},
    "lr x2 warmup 10%": {"lr_scale": 2.0, "warmup": 0.1, "start": 0.1},
    "lr x4 warmup 10%": {"lr_scale": 4.0, "warmup": 0.1, "start": 0.1},
}


def candidates(spec) -> dict[str, tuple[Schedule, float]]:
    """label -> (schedule, peak lr)."""
    out = {}
    for label, knobs in CANDIDATES.items():
        knobs = dict(knobs)
        scale = knobs.pop("lr_scale", 1.0)
        out[label] = (dataclasses.replace(Schedule(), **knobs), spec.optim.lr * scale)
    paper = spec.optim.paper
    out["paper"] = (paper, paper.lr or spec.optim.lr)
    return out


def run_family(name: str, signal, args, device) -> list[dict]:
    spec = get_spec(name)
    budget = None if spec.rate_aware else parse_param_budget(args.params)
    cfg, model = build_model(spec, signal, budget, None, seed=0)
    rows = []
    for label, (sched, lr) in candidates(spec).items():
        optim = dataclasses.replace(spec.optim, fast=sched)
        fit = FitConfig(steps=args.steps, lr=lr, seed=0, eval_every=10**9)
        m = copy.deepcopy(model).to(device)
        row = {"model": name, "schedule": label, "lr": lr, "warmup": sched.warmup, "floor": sched.floor, "steps": args.steps}
        if spec.rate_aware:  # the real encode: analysis start at the rate, lambda steered
            meta = {"kind": signal.kind, "shape": list(signal.data.shape)}
            enc = encode_rate_aware(signal, dataclasses.replace(spec, optim=optim), cfg, m, fit, RateTarget(bpp=args.bpp), meta, device)
            row.update(psnr=round(enc.metrics["psnr"], 3), bpp=round(len(enc.data) * 8 / signal.num_samples, 4))
        else:
            opts = FitOptions(model=name, params=budget, fit=fit)
            task = m.make_task(signal, device, opts)
            Trainer(m, task, fit, optim, device).run()
            row["psnr"] = round(task.evaluate(m)["psnr"], 3)
        rows.append(row)
        print(f"  {name:8s} {label:17s} lr {lr:.1e}  {row['psnr']:.2f} dB", flush=True)
    best = max(rows, key=lambda r: r["psnr"])
    for r in rows:
        r["best"] = r is best
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="siren,poly,ffn,hashgrid,nerv,nervpp,hnerv,grid")
    ap.add_argument("--params", default="0.05M", help="size of the fit-then-compress families")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--bpp", type=float, default=0.2, help="the grid family's latent rate target")
    ap.add_argument("--video", default=str(CARPHONE))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--name", default="schedule")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    frames, _ = read_media(Path(args.video), ReadOptions(max_frames=args.frames))
    signals = {"video": video_signal(frames), "image": image_signal(frames[0])}
    rows = []
    for n in args.models.split(","):
        spec = get_spec(n)
        rows += run_family(n, signals["image" if spec.model_cls.any_resolution else "video"], args, device)
    print_table(rows, ["model", "schedule", "lr", "warmup", "floor", "steps", "psnr", "bpp", "best"])
    write_json(args.name, {"args": vars(args), "device": str(device), "results": rows})


if __name__ == "__main__":
    main()
