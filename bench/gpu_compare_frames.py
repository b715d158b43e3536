"""Two decodes of one .inr (e.g. GPU and CPU) against each other and against the source frames.

    python bench/gpu_compare_frames.py DECODED_A/ DECODED_B/ SOURCE_FRAMES/

Prints the largest per-pixel difference between A and B (8-bit levels) and each one's PSNR to
the source: the decoder's output must not depend on the device that runs it, beyond rounding.
"""
from __future__ import annotations

import sys
from pathlib import Path

from common import ROOT  # noqa: F401  (puts the repo on sys.path)
import torch

from inr.metrics import psnr
from video.media import ReadOptions, read_media


def main() -> None:
    a, b, src = (read_media(Path(p), ReadOptions())[0] for p in sys.argv[1:4])
    n = min(len(a), len(b), len(src))
    a, b, src = a[:n], b[:n], src[:n, : a.shape[1], : a.shape[2]]
    diff = (a.int() - b.int()).abs()
    f = lambda x: x.float() / 255.0  # noqa: E731
    print(f"frames {n}  max |A-B| {int(diff.max())} levels  pixels differing {float((diff > 0).float().mean()) * 100:.3f} %")
    print(f"PSNR A {float(psnr(f(a), f(src))):.3f} dB  B {float(psnr(f(b), f(src))):.3f} dB")


if __name__ == "__main__":
    main()
