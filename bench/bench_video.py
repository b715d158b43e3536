"""NeRV vs NeRV++ vs HNeRV at the same parameter budget on Bunny (downscaled), this machine.

    python bench/bench_video.py [--epochs 60] [--params 0.15M] [--size 320x160] [--frames 32]

Bunny 1280x720 is resized to 320x180 and centre-cropped to 320x160 (HNeRV's 2:1 crop).
Every `--eval-every` epochs the full clip is decoded and scored; the time column counts
training steps only (evaluation excluded), so the curves are PSNR vs epochs and vs seconds.
"""
from __future__ import annotations

import argparse
from pathlib import Path


from common import ROOT, print_table, write_json  # noqa: I001
from inr.device import select_device
from inr.fit import FitConfig, Trainer
from inr.models import get_spec, parse_param_budget
from inr.models.sizing import stored_params
from inr.pipeline import FitOptions, build_model, make_task
from inr.signals import video_signal
from video.media import ReadOptions, parse_size, read_video

BUNNY = ROOT.parent / "shared" / "media" / "bigbuckbunny.mp4"


def run_model(name: str, signal, budget: int, epochs: int, eval_every: int, lr: float | None, device) -> dict:
    spec = get_spec(name)
    cfg, model = build_model(spec, signal, budget, None, seed=0)
    model = model.to(device)
    opts = FitOptions(model=name, params=budget, batch_size=2, fit=FitConfig(epochs=epochs, lr=lr, seed=0))
    task = make_task(spec, signal, device, opts)
    trainer = Trainer(model, task, opts.fit, spec.optim, device)
    curve: list[dict] = []

    def on_step(state) -> None:
        if state.step % (task.steps_per_epoch * eval_every) == 0:
            ev = task.evaluate(model)
            curve.append({"epoch": round(state.epoch), "seconds": round(state.elapsed, 2), "psnr": round(ev["psnr"], 3), "msssim": round(ev["msssim"], 4)})
            print(f"  {name} epoch {curve[-1]['epoch']:4d}  {curve[-1]['seconds']:7.1f} s  {ev['psnr']:.2f} dB", flush=True)

    state = trainer.run(callback=on_step)
    final = task.evaluate(model)
    return {
        "model": name,
        "params": stored_params(spec, cfg),
        "epochs": epochs,
        "train_seconds": round(state.elapsed, 1),
        "psnr": round(final["psnr"], 3),
        "msssim": round(final["msssim"], 4),
        "decode_fps": round(final["decode_fps"], 1),
        "curve": curve,
    }


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
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--name", default="video")
    args = ap.parse_args()
    device = select_device(args.device)
    frames, info = read_video(Path(args.video), ReadOptions(max_frames=args.frames, resize=parse_size(args.resize, "resize"), crop=parse_size(args.crop, "crop")))
    signal = video_signal(frames)
    budget = parse_param_budget(args.params)
    rows = [run_model(n, signal, budget, args.epochs, args.eval_every, args.lr, device) for n in args.models.split(",")]
    print_table(rows, ["model", "params", "epochs", "train_seconds", "psnr", "msssim", "decode_fps"])
    write_json(args.name, {"args": vars(args), "device": str(device), "frames": list(frames.shape), "results": rows})


if __name__ == "__main__":
    main()
