"""Image INRs on this machine: PSNR after a fixed wall-clock budget, hash-grid throughput.

    python bench/bench_image.py [--seconds 30] [--params 100k]

Each model is sized to the same parameter budget and fitted to a 256x256 crop of a real
Bunny frame for the same wall-clock seconds (the LR schedule follows the time budget).
"""
from __future__ import annotations

import argparse
import time

import torch

from common import print_table, write_json  # noqa: I001  (bench/ is run as a script)
from inr.device import select_device
from inr.encodings import HashGridConfig, HashGridEncoding
from inr.fit import FitConfig
from inr.models import parse_param_budget
from inr.pipeline import FitOptions, fit_signal
from inr.signals import image_signal
from video.media import load_image

SAMPLE = "inr/assets/bunny_256.png"


def hashgrid_throughput(device: torch.device, in_dim: int, n: int, repeats: int = 5) -> float:
    cfg = HashGridConfig(in_dim=in_dim, n_levels=16, n_features=2, table_size=2**16, base_resolution=16, max_resolution=512)
    enc = HashGridEncoding(cfg, backend="auto").to(device)
    x = torch.rand(n, in_dim, device=device) * 2 - 1
    for _ in range(2):
        enc(x).sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        enc(x).sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n * repeats / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--params", default="100k")
    ap.add_argument("--models", default="siren,poly,ffn,hashgrid")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = select_device(args.device)
    sig = image_signal(load_image(SAMPLE))
    budget = parse_param_budget(args.params)
    rows = []
    for name in args.models.split(","):
        out = fit_signal(sig, FitOptions(model=name, params=budget, fit=FitConfig(seconds=args.seconds)), device)
        m = out.metrics
        rows.append({"model": name, "params": m["params"], "seconds": m["seconds"], "steps": m["steps"], "psnr": m["psnr"], "ssim": m["ssim"]})
        print(f"{name}: {m['psnr']:.2f} dB after {m['steps']} steps", flush=True)
    print_table(rows, ["model", "params", "seconds", "steps", "psnr", "ssim"])
    tp = [
        {"input": "2-D", "points": 65536, "points_per_s": hashgrid_throughput(device, 2, 65536)},
        {"input": "3-D", "points": 65536, "points_per_s": hashgrid_throughput(device, 3, 65536)},
    ]
    print_table(tp, ["input", "points", "points_per_s"])
    write_json("image", {"args": vars(args), "device": str(device), "fits": rows, "hashgrid_fwd_bwd": tp})


if __name__ == "__main__":
    main()
