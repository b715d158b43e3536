"""Headline: BD-rate of an INR against x264/x265 on a real clip at a fixed CPU time budget.

    python bench/bench_rd.py [--model hnerv] [--seconds 120] [--bpp 0.1,0.2,0.4]

Runs `inr compare` on Bunny (resized to 320x180, cropped to 320x160, 32 frames): every INR
point gets the same wall-clock budget (per rate-control attempt); the codecs run a CRF
sweep at presets medium and veryslow. The full report lands in bench/results/rd/.
"""
from __future__ import annotations

import argparse
import json

from common import RESULTS, print_table, write_json  # noqa: I001
from bench_video import BUNNY
from inr.device import select_device
from video.compare import CompareOptions, run_compare
from video.media import ReadOptions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="hnerv")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--bpp", default="0.1,0.2,0.4")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--crf", default="23,28,33,38,43,48")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    opts = CompareOptions(
        models=[args.model],
        bpps=[float(b) for b in args.bpp.split(",")],
        codecs=["h264", "h265"],
        presets=["medium", "veryslow"],
        crfs=[int(c) for c in args.crf.split(",")],
        seconds=args.seconds,
        read=ReadOptions(max_frames=args.frames, resize=(320, 180), crop=(320, 160)),
    )
    res = run_compare(BUNNY, opts, RESULTS / "rd", select_device(args.device))
    rows = [{k: p[k] for k in ("method", "preset", "setting", "bytes", "bpp", "psnr", "psnr_y", "msssim", "encode_seconds")} for p in res["points"]]
    print_table(rows, ["method", "preset", "setting", "bytes", "bpp", "psnr", "psnr_y", "msssim", "encode_seconds"])
    print("BD-rate %:", json.dumps(res["bd_rate"]))
    write_json("rd", {"args": vars(args), "points": rows, "bd_rate": res["bd_rate"], "bd_psnr": res["bd_psnr"]})


if __name__ == "__main__":
    main()
