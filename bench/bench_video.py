"""NeRV vs NeRV++ vs HNeRV at the same parameter budget on Bunny (downscaled), this machine.

    python bench/bench_video.py [--epochs 60] [--params 0.15M] [--size 320x160] [--frames 32]
        [--variants fast:on,paper:off] [--seeds 0,1] [--reach 24]

Bunny 1280x720 is resized to 320x180 and centre-cropped to 320x160 (HNeRV's 2:1 crop).
Every `--eval-every` epochs the full clip is decoded and scored; the time column counts
training steps only (evaluation excluded), so the curves are PSNR vs epochs and vs seconds.
A variant is `schedule:speed`: the learning-rate schedule (`fast` or `paper`, see
inr/models/schedules.py; `paper@hnerv` borrows another family's) and the speed-ups (`on`: the device's defaults; `off`: fp32, NCHW,
per-parameter Adam; `amp`: the defaults with bf16 autocast forced on, to measure what bf16
costs a family that does not use it by default). `--reach X` adds the training seconds to the first evaluation at or
above X dB (evaluate often, e.g. `--eval-every 2`, for a fine reading).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from common import ROOT, print_table, write_json  # noqa: I001
import torch

from inr.device import select_device
from inr.fit import FitConfig, Trainer
from inr.models import get_spec, parse_param_budget
from inr.models.sizing import stored_params
from inr.pipeline import FitOptions, build_model
from inr.signals import video_signal
from video.media import ReadOptions, parse_size, read_media

BUNNY = ROOT.parent / "shared" / "media" / "bigbuckbunny.mp4"


OFF = {"amp": False, "channels_last": False, "fused_adam": False, "input_cache": False}
SPEEDS = {"on": {}, "off": OFF, "amp": {"amp": True}, "fp32": {"amp": False}}  # fp32: the defaults less bf16 (CUDA turns bf16 on for all)


def run_model(name: str, signal, budget: int, args, variant: str, seed: int, device) -> dict:
    schedule, speed = variant.split(":")
    spec = get_spec(name)
    optim = spec.optim
    if "@" in schedule:  # e.g. paper@hnerv: NeRV trained as the HNeRV code trains it (the side-by-side's setup)
        schedule, family = schedule.split("@")
        optim = dataclasses.replace(optim, **{schedule: get_spec(family).optim.schedule(schedule)})
    cfg, model = build_model(spec, signal, budget, None, seed=seed)
    model = model.to(device)
    fit = FitConfig(epochs=args.epochs, lr=args.lr, seed=seed, schedule=schedule, **SPEEDS[speed])
    opts = FitOptions(model=name, params=budget, batch_size=2, fit=fit)
    task = model.make_task(signal, device, opts)
    trainer = Trainer(model, task, opts.fit, optim, device)
    curve: list[dict] = []
    eval_every = args.eval_every

    def on_step(state) -> None:
        if state.step % (task.steps_per_epoch * eval_every) == 0:
            ev = task.evaluate(model)
            curve.append({"epoch": round(state.epoch), "seconds": round(state.elapsed, 2), "psnr": round(ev["psnr"], 3), "msssim": round(ev["msssim"], 4)})
            print(f"  {name} {variant} seed {seed} epoch {curve[-1]['epoch']:4d}  {curve[-1]['seconds']:7.1f} s  {ev['psnr']:.2f} dB", flush=True)

    state = trainer.run(callback=on_step)
    final = task.evaluate(model)
    row = {
        "model": name,
        "variant": variant,
        "seed": seed,
        "params": stored_params(spec, cfg),
        "epochs": args.epochs,
        "train_seconds": round(state.elapsed, 1),
        "psnr": round(final["psnr"], 3),
        "msssim": round(final["msssim"], 4),
        "decode_fps": round(final["decode_fps"], 1),
        "curve": curve,
    }
    if args.reach is not None:
        hit = next((c["seconds"] for c in curve if c["psnr"] >= args.reach), None)
        row[f"s_to_{args.reach:g}dB"] = hit if hit is not None else "not reached"
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(BUNNY))
    ap.add_argument("--models", default="nerv,nervpp,hnerv")
    ap.add_argument("--params", default="0.15M")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--resize", default="320x180")
    ap.add_argument("--crop", default="320x160")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the schedule's)")
    ap.add_argument("--variants", default="fast:on", help="comma-separated schedule:speed pairs, e.g. fast:on,paper:off")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--reach", type=float, default=None, help="report the training seconds to reach this PSNR")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--name", default="video")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bad = [v for v in args.variants.split(",") if v.partition(":")[2] not in SPEEDS]
    if bad:
        ap.error(f"unknown speed in {', '.join(bad)} (use {', '.join(SPEEDS)})")
    device = select_device(args.device)
    frames, info = read_media(Path(args.video), ReadOptions(max_frames=args.frames, resize=parse_size(args.resize, "resize"), crop=parse_size(args.crop, "crop")))
    signal = video_signal(frames)
    budget = parse_param_budget(args.params)
    rows = [
        run_model(n, signal, budget, args, v, int(seed), device)
        for n in args.models.split(",")
        for v in args.variants.split(",")
        for seed in args.seeds.split(",")
    ]
    reach = [f"s_to_{args.reach:g}dB"] if args.reach is not None else []
    print_table(rows, ["model", "variant", "seed", "params", "epochs", "train_seconds", "psnr", "msssim", "decode_fps", *reach])
    write_json(args.name, {"args": vars(args), "device": str(device), "frames": list(frames.shape), "results": rows})


if __name__ == "__main__":
    main()
