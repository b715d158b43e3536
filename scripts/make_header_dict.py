"""Write inr/assets/header_dict_2.bin: the preset zlib dictionary of `.inr` headers (flag bit 1).

Run once; the bytes are part of the file format (docs/bitstream.md, "Header"), pinned by their
SHA-256 in inr/bitstream.py, and must never change: files written with them need the same bytes
to be read. The first dictionary (header_dict.bin, flag bit 0) was written by an earlier version
of this script (commit 90e4181) and stays for the files written with it.

The dictionary is the JSON headers of small files of every family, then the default family's
(grid) images and videos at the rates where its layout changes (finest level, luma-only level,
motion fields, residual latents), the commonest last (zlib finds matches near the end of a
dictionary cheapest). So the tensor names, config keys, config values and record layout a
header repeats cost a few bits each instead of their spelling: a 256x256 grid image's header
is about 65 bytes with it against about 230 with the first dictionary, which at 0.25 bpp is
8 % of the file. The signals are synthetic (smooth gradients and waves), not any clip a
report measures.

    python scripts/make_header_dict.py
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from inr import bitstream
from inr.export.compress import ExportOptions, encode_signal, encode_to_bpp
from inr.fit import FitConfig
from inr.pipeline import FitOptions
from inr.signals import image_signal, video_signal

ROOT = Path(__file__).resolve().parents[1]
# (family, signal shape: (H, W, 3) image or (T, H, W, 3) video, bpp target or None: default size)
HEADERS = (
    *((m, (32, 32, 3), None) for m in ("siren", "poly", "ffn", "hashgrid")),
    *((m, (4, 32, 48, 3), None) for m in ("nervpp", "nerv", "hnerv")),
    ("shacira", (64, 64, 3), 1.0),
    ("grid", (32, 180, 320, 3), 0.05),
    ("grid", (32, 180, 320, 3), 0.4),
    ("grid", (32, 180, 320, 3), 0.2),
    ("grid", (512, 768, 3), 2.0),
    ("grid", (512, 768, 3), 0.5),
    ("grid", (256, 256, 3), 1.0),
    ("grid", (256, 256, 3), 0.25),
)


def smooth(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Uint8 frames of gradients and waves: latents of the sizes natural content gives."""
    *lead, h, w, c = shape
    y = torch.linspace(0, 1, h)[:, None, None]
    x = torch.linspace(0, 1, w)[None, :, None]
    phase = torch.rand(c, generator=gen) * 6.28
    t = torch.arange(lead[0] if lead else 1).float()[:, None, None, None] / 8
    img = 0.5 + 0.25 * torch.sin(9 * x + 5 * y + phase + t) + 0.2 * torch.cos(23 * x * y + phase * 2 - t)
    img = img + 0.03 * torch.rand(img.shape, generator=gen)
    img = img.clamp(0, 1) if lead else img[0].clamp(0, 1)
    return (img * 255).round().to(torch.uint8)


def header_text(model: str, shape: tuple[int, ...], bpp: float | None) -> bytes:
    gen = torch.Generator().manual_seed(0)
    video = len(shape) == 4
    data = smooth(shape, gen)
    signal = video_signal(data, source="clip.mp4", fps=25.0) if video else image_signal(data, source="image.png")
    opts = FitOptions(model=model, params=None, fit=FitConfig(steps=2, seed=0))
    if bpp is None:
        enc = encode_signal(signal, opts, ExportOptions(), torch.device("cpu"))
    else:
        enc, _ = encode_to_bpp(signal, opts, ExportOptions(), bpp, torch.device("cpu"))
    header = bitstream.read(enc.data).header
    return json.dumps(header, separators=(",", ":"), sort_keys=True).encode()


def main() -> None:
    blob = b"".join(header_text(*spec) for spec in HEADERS)
    out = ROOT / "inr" / "assets" / "header_dict_2.bin"
    out.write_bytes(blob[-32768:])  # zlib uses at most the last 32 KiB
    print(f"wrote {out} ({min(len(blob), 32768)} bytes)")


if __name__ == "__main__":
    main()
