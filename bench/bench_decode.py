"""Decoding speed from `.inr` files at 320x180 (the bundled clip), on this machine.

    python bench/bench_decode.py [--models nerv,hnerv] [--params 0.15M] [--repeats 3]
    python bench/bench_decode.py --models grid --bpp 0.05,0.1,0.2,0.4 [--seconds 20]

Each model is encoded briefly (speed does not depend on how well it fitted), then the
file is decoded `--repeats` times: `fps` counts the decoder's forward passes only (model
in memory), `fps_from_file` includes parsing, entropy decoding and building the model.
A rate-aware family (`grid`) is encoded at each `--bpp` instead of a parameter budget: its
layout (time slices, motion fields, residual) and so its decoding work follow the rate.
The best of the repeats is kept: single decodes on this machine vary by 20-40 %.
"""
from __future__ import annotations

import argparse
import time

import torch

from common import ROOT, print_table, write_json  # noqa: I001
from inr.device import select_device, synchronize
from inr.export.codec import decode_model
from inr.export.compress import ExportOptions, decode_bytes, encode_signal, encode_to_bpp
from inr.fit import FitConfig
from inr.models import get_spec, parse_param_budget
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
    ap.add_argument("--bpp", default="0.05,0.1,0.2,0.4", help="targets of the rate-aware families")
    ap.add_argument("--seconds", type=float, default=20.0, help="encode budget of a rate-aware point")
    args = ap.parse_args()
    device = select_device(args.device)
    frames, _ = read_media(CLIP)
    sig = video_signal(frames)
    t = frames.shape[0]
    rows = []
    for name in args.models.split(","):
        if get_spec(name).rate_aware:
            for bpp in [float(b) for b in args.bpp.split(",")]:
                opts = FitOptions(model=name, fit=FitConfig(seconds=args.seconds))
                data = encode_to_bpp(sig, opts, ExportOptions(), bpp, device)[0].data
                rows.append(_timed(name, data, t, args.repeats, device))
                print(rows[-1], flush=True)
            continue
        opts = FitOptions(model=name, params=parse_param_budget(args.params), batch_size=2, fit=FitConfig(epochs=2))
        data = encode_signal(sig, opts, ExportOptions(), device).data
        rows.append(_timed(name, data, t, args.repeats, device))
        print(rows[-1], flush=True)
    print_table(rows, ["model", "size", "frames", "bytes", "bpp", "fps", "fps_from_file"])
    name = "decode" if args.models == "nerv,hnerv" else "decode_" + args.models.replace(",", "_")
    write_json(name, {"args": vars(args), "device": str(device), "threads": torch.get_num_threads(), "results": rows})


def _timed(name: str, data: bytes, t: int, repeats: int, device) -> dict:
    """Best-of-`repeats` decode times of one file: the model's forward passes alone, and from
    the bytes (parsing, entropy decoding, building the model, rendering)."""
    spec, _, model, header = decode_model(data)
    if getattr(model, "embeddings", None) is not None:
        model.embeddings = model.embeddings.to(device)
    shape = header["signal"]["shape"]
    model.render(shape, device)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        model.render(shape, device)
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    full = min(decode_bytes(data, device)[2] for _ in range(repeats))
    return {"model": name, "size": f"{shape[2]}x{shape[1]}", "frames": t, "bytes": len(data), "bpp": round(len(data) * 8 / (t * shape[1] * shape[2]), 3), "fps": round(t / best, 1), "fps_from_file": round(t / full, 1)}


if __name__ == "__main__":
    main()
