"""Learning rate vs a fixed CPU budget: the papers' lr suits 300 epochs, not one minute.

    python bench/bench_lr.py [--model hnerv] [--params 100k] [--seconds 60] [--lrs 1e-3,3e-3,1e-2]
"""
from __future__ import annotations

import argparse


from common import print_table, write_json  # noqa: I001
from bench_video import BUNNY
from inr.device import select_device
from inr.fit import FitConfig
from inr.models import parse_param_budget
from inr.pipeline import FitOptions, fit_signal
from inr.signals import video_signal
from video.media import ReadOptions, read_media


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="hnerv")
    ap.add_argument("--params", default="100k")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--lrs", default="1e-3,3e-3,1e-2")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = select_device(args.device)
    frames, _ = read_media(BUNNY, ReadOptions(max_frames=32, resize=(320, 180), crop=(320, 160)))
    sig = video_signal(frames)
    rows = []
    for lr in (float(x) for x in args.lrs.split(",")):
        opts = FitOptions(model=args.model, params=parse_param_budget(args.params), batch_size=2, fit=FitConfig(seconds=args.seconds, lr=lr))
        out = fit_signal(sig, opts, device)
        rows.append({"lr": lr, "steps": out.state.step, "epochs": round(out.state.epoch, 1), "psnr": round(out.metrics["psnr"], 2)})
        print(rows[-1], flush=True)
    print_table(rows, ["lr", "steps", "epochs", "psnr"])
    write_json("lr", {"args": vars(args), "device": str(device), "results": rows})


if __name__ == "__main__":
    main()
