"""Rate-distortion effect of weight bits and pruning, from one fitted model, on this machine.

    python bench/bench_export.py [--model hnerv] [--params 0.15M] [--epochs 60]

Bunny resized to 320x180, centre-cropped to 320x160, 32 frames. The model is fitted once;
each (bits, prune) setting then runs the export stage (prune + fine-tune, QAT, entropy
coding) on a copy, writes the bytes, and decodes them: size and PSNR are of the file.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import time


from common import print_table, write_json  # noqa: I001
from bench_video import BUNNY
from inr.device import select_device
from inr.export.compress import ExportOptions, decode_bytes, export_fitted, split_budget
from inr.fit import FitConfig
from inr.metrics import ms_ssim_frames, psnr
from inr.models import parse_param_budget
from inr.pipeline import FitOptions, fit_signal
from inr.signals import video_signal
from video.media import ReadOptions, read_media


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="hnerv")
    ap.add_argument("--params", default="0.15M")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--bits", default="4,6,8")
    ap.add_argument("--prune", default="0,0.2,0.4")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = select_device(args.device)
    frames, _ = read_media(BUNNY, ReadOptions(max_frames=args.frames, resize=(320, 180), crop=(320, 160)))
    sig = video_signal(frames)
    fit = FitConfig(epochs=args.epochs, seed=0)
    main_fit, ft = split_budget(fit, 0.1, 2)
    opts = FitOptions(model=args.model, params=parse_param_budget(args.params), batch_size=2, fit=fit)
    t0 = time.perf_counter()
    fitted = fit_signal(sig, dataclasses.replace(opts, fit=main_fit), device)
    fit_seconds = time.perf_counter() - t0
    print(f"fitted {args.model}: {fitted.metrics['psnr']:.2f} dB float, {fit_seconds:.0f} s", flush=True)
    pixels = frames.shape[0] * frames.shape[1] * frames.shape[2]
    rows = []
    for bits in [int(b) for b in args.bits.split(",")]:
        for prune in [float(p) for p in args.prune.split(",")]:
            t0 = time.perf_counter()
            enc = export_fitted(copy.deepcopy(fitted), sig, opts, ExportOptions(bits=bits, prune=prune), ft, device)
            export_seconds = time.perf_counter() - t0
            decoded, _, decode_seconds = decode_bytes(enc.data, device)
            ms = ms_ssim_frames(decoded, sig.data)
            rows.append(
                {
                    "bits": bits,
                    "prune": prune,
                    "bytes": len(enc.data),
                    "bpp": round(len(enc.data) * 8 / pixels, 4),
                    "psnr": round(psnr(decoded, sig.data), 3),
                    "msssim": round(sum(ms) / len(ms), 4),
                    "export_s": round(export_seconds, 1),
                    "decode_fps": round(frames.shape[0] / decode_seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    print_table(rows, ["bits", "prune", "bytes", "bpp", "psnr", "msssim", "export_s", "decode_fps"])
    write_json(
        "export",
        {"args": vars(args), "device": str(device), "float_psnr": fitted.metrics["psnr"], "fit_seconds": round(fit_seconds, 1), "results": rows},
    )


if __name__ == "__main__":
    main()
