"""Write inr/assets/header_dict.bin: the preset zlib dictionary for `.inr` headers.

Run once; the bytes are part of the file format (docs/bitstream.md, "Header"), pinned by their
SHA-256 in inr/bitstream.py, and must never change: files written with them need the same bytes
to be read. It is the JSON headers of small files of every family, the default family last
(zlib finds matches near the end of a dictionary cheapest), so the tensor names, config keys
and record layout a header repeats cost a few bits each instead of their spelling.

    python scripts/make_header_dict.py
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from inr import bitstream
from inr.export.compress import ExportOptions, encode_signal
from inr.fit import FitConfig
from inr.pipeline import FitOptions
from inr.signals import image_signal, video_signal

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("siren", "poly", "ffn", "hashgrid", "nervpp", "nerv", "hnerv", "grid")


def header_text(model: str) -> bytes:
    gen = torch.Generator().manual_seed(0)
    video = model in ("nerv", "nervpp", "hnerv", "grid")
    data = torch.rand((4, 32, 48, 3) if video else (32, 32, 3), generator=gen)
    signal = video_signal((data * 255).to(torch.uint8)) if video else image_signal((data * 255).to(torch.uint8))
    opts = FitOptions(model=model, params=None, fit=FitConfig(steps=2, seed=0))
    enc = encode_signal(signal, opts, ExportOptions(), torch.device("cpu"))
    header = bitstream.read(enc.data).header
    return json.dumps(header, separators=(",", ":"), sort_keys=True).encode()


def main() -> None:
    blob = b"".join(header_text(m) for m in ORDER)
    out = ROOT / "inr" / "assets" / "header_dict.bin"
    out.write_bytes(blob[-32768:])  # zlib uses at most the last 32 KiB
    print(f"wrote {out} ({min(len(blob), 32768)} bytes)")


if __name__ == "__main__":
    main()
