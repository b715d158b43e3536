"""Headline: BD-rate of an INR against x264/x265 (video) or JPEG/WebP/AVIF (image) at a fixed
CPU time budget per RD point, and how it moves as the budget grows.

    python bench/bench_rd.py [--clip bunny|carphone|bunny256] [--model auto] [--seconds 60,120] [--bpp 0.05,0.1,0.2,0.4]

Clips: `bunny` is the bundled sample (inr/assets/bunny_320x180_32f.mp4, 320x180, 32 frames);
`carphone` the shared QCIF clip (176x144, first --frames frames); `bunny256` the bundled
256x256 still. Every INR point gets the same wall-clock budget for its whole encode (rate
control included); the codecs run a CRF (video) or quality (image) sweep. For each budget
the full report lands in bench/results/rd_<clip>_<seconds>s/ and the numbers in
bench/results/rd_<clip>.json.
"""
from __future__ import annotations

import argparse
import json
import shutil

from common import ROOT, print_table, write_json  # noqa: I001
from inr.device import select_device
from video.compare import CompareOptions, run_compare
from video.media import ReadOptions

CLIPS = {
    "bunny": (ROOT / "inr" / "assets" / "bunny_320x180_32f.mp4", "video"),
    "carphone": (ROOT.parent / "shared" / "media" / "carphone_pristine.mp4", "video"),
    "bunny256": (ROOT / "inr" / "assets" / "bunny_256.png", "image"),
}
COLUMNS = ["method", "preset", "setting", "bytes", "bpp", "psnr", "psnr_y", "msssim", "encode_seconds"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", choices=sorted(CLIPS), default="bunny")
    ap.add_argument("--model", default="auto")
    ap.add_argument("--seconds", default="60", help="comma-separated budgets per INR point")
    ap.add_argument("--bpp", default="0.05,0.1,0.2,0.4")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--crf", default="23,28,33,38,43,48")
    ap.add_argument("--quality", default="5,10,20,30,40,50,60,70,80,90")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--keep-points", action="store_true", help="reuse the points an earlier run left (same settings, possibly other code)")
    args = ap.parse_args()
    path, kind = CLIPS[args.clip]
    runs = []
    for seconds in [float(s) for s in args.seconds.split(",")]:
        video = kind == "video"
        opts = CompareOptions(
            models=[args.model],
            bpps=[float(b) for b in args.bpp.split(",")],
            codecs=["h264", "h265"] if video else ["jpeg", "webp", "avif"],
            presets=["medium", "veryslow"] if video else None,
            crfs=[int(c) for c in args.crf.split(",")] if video else None,
            qualities=None if video else [int(q) for q in args.quality.split(",")],
            seconds=seconds,
            read=ReadOptions(max_frames=args.frames) if video else ReadOptions(),
        )
        folder = ROOT / "bench" / "results" / f"rd_{args.clip}_{seconds:g}s"
        if not args.keep_points:
            # `inr compare` reuses the points of an earlier run of the same settings, whatever
            # code made them: a benchmark measures the checkout it runs in, so it starts afresh
            shutil.rmtree(folder / "points", ignore_errors=True)
        res = run_compare(path, opts, folder, select_device(args.device))
        rows = [{k: p.get(k) for k in COLUMNS + ["status", "error"]} for p in res["points"]]
        print(f"\n{args.clip}, {seconds:g} s per INR point")
        print_table([r for r in rows if r.get("status", "ok") == "ok"], COLUMNS)
        print("BD-rate %:", json.dumps(res["bd_rate"]))
        runs.append({"seconds": seconds, "points": rows, "bd_rate": res["bd_rate"], "bd_psnr": res["bd_psnr"]})
    write_json(f"rd_{args.clip}", {"args": vars(args), "clip": str(path.name), "runs": runs})


if __name__ == "__main__":
    main()
