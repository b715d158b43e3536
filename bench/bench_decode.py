"""Decoding speed from `.inr` files at 320x180 (the bundled clip), on this machine.

    python bench/bench_decode.py [--models nerv,hnerv] [--params 0.15M] [--repeats 3]

Each model is encoded briefly (speed does not depend on how well it fitted), then the
file is decoded `--repeats` times: `fps` counts the decoder's forward passes only (model
in memory), `fps_from_file` includes parsing, entropy decoding and building the model.
"""
from __future__ import annotations

import argparse
import time

import torch

from common import ROOT, print_table, write_json  # noqa: I001
from inr.device import select_device, synchronize
from inr.export.codec import decode_model
from inr.export.compress import ExportOptions, decode_bytes, encode_signal
from inr.fit import FitConfig
from inr.models import parse_param_budget
from inr.pipeline import FitOptions
from inr.signals import video_signal
from video.media import read_media

CLIP = ROOT / "inr" / "assets" / "bunny_320x180_32f.mp4"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="nerv,hnerv")
    ap.add_argument("--params", default="0.15M")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = select_device(args.device)
    frames, _ = read_media(CLIP)
    sig = video_signal(frames)
    t = frames.shape[0]
    rows = []
    for name in args.models.split(","):
        opts = FitOptions(model=name, params=parse_param_budget(args.params), batch_size=2, fit=FitConfig(epochs=2))
        data = encode_signal(sig, opts, ExportOptions(), device).data
        spec, _, model, header = decode_model(data)
        if getattr(model, "embeddings", None) is not None:
            model.embeddings = model.embeddings.to(device)
        shape = header["signal"]["shape"]
        model.render(shape, device)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            synchronize(device)
            t0 = time.perf_counter()
            model.render(shape, device)
            synchronize(device)
            best = min(best, time.perf_counter() - t0)
        full = min(decode_bytes(data, device)[2] for _ in range(args.repeats))
        rows.append({"model": name, "size": f"{shape[2]}x{shape[1]}", "frames": t, "bytes": len(data), "fps": round(t / best, 1), "fps_from_file": round(t / full, 1)})
        print(rows[-1], flush=True)
    print_table(rows, ["model", "size", "frames", "bytes", "fps", "fps_from_file"])
    write_json("decode", {"args": vars(args), "device": str(device), "threads": torch.get_num_threads(), "results": rows})


if __name__ == "__main__":
    main()
