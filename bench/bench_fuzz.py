"""Decoder fuzzing: N mutations of small valid files through `inr decode`'s path, in process.

    python bench/bench_fuzz.py [--n 2000] [--seed 0] [--slow 1.0]

Mutators (inr/export/hostile.py): `raw` byte damage (CRCs left stale), `crc-fixed` damage
inside one section with its CRC recomputed, `header-text` damage of the header's JSON text
(kept when it still parses), `header-json` structural edits (a node replaced by a hostile
value of another type or size, or deleted). Each mutated file goes through `decode_bytes`
(header checks, entropy decoding, model build, render) on the CPU. Outcomes: `decoded`,
`BitstreamError:<part>`, `OTHER:<exception type>` (a bug), `skipped` (the mutator made no
file); `slow` counts decodes over `--slow` seconds. Prints a table and writes
bench/results/fuzz.json. A seed file's own first decode is run before timing (one-time imports).
"""
from __future__ import annotations

import argparse
import collections
import random
import resource
import time

import torch

from common import ROOT, print_table, write_json  # noqa: I001
from inr.bitstream import BitstreamError
from inr.export.compress import decode_bytes
from inr.export.hostile import MUTATORS, seed_file
from inr.signals import image_signal, video_signal
from video.media import ReadOptions, load_image, read_media

CPU = torch.device("cpu")


def seeds() -> dict[str, bytes]:
    """A video file with every section (HNeRV: masks, embeddings), a coordinate-model image
    file, a rate-aware grid file (latents in LATS) and a SHACIRA file (hash latents in HLAT)."""
    frames, _ = read_media(ROOT / "inr" / "assets" / "bunny_320x180_32f.mp4", ReadOptions(max_frames=2, resize=(96, 64)))
    image = load_image(ROOT / "inr" / "assets" / "bunny_256.png")[96:128, 96:128]
    return {
        "hnerv": seed_file(video_signal(frames[:, :32, :32]), "hnerv", 6_000, prune=0.2),
        "siren": seed_file(image_signal(image), "siren", 2_000),
        "grid": seed_file(video_signal(frames[:, :32, :32]), "grid", 2_000),  # LATS + latent records
        "shacira": seed_file(image_signal(image), "shacira", 2_000),  # HLAT + hash latent records
    }


def outcome(data: bytes) -> str:
    try:
        decode_bytes(data, CPU)
    except BitstreamError as exc:
        return f"BitstreamError:{exc.part}"
    except Exception as exc:  # noqa: BLE001 - counted: every one of these is a decoder bug
        return f"OTHER:{type(exc).__name__}"
    return "decoded"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="mutations per mutator and seed file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slow", type=float, default=1.0, help="seconds over which a decode counts as slow")
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = seeds()
    for data in files.values():
        decode_bytes(data, CPU)  # warm-up: one-time imports are not a property of the file
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows, examples = [], {}
    for family, data in files.items():
        for name, mutate in MUTATORS.items():
            rng = random.Random(f"{args.seed}:{family}:{name}")
            counts: collections.Counter[str] = collections.Counter()
            slow, worst, spent = 0, 0.0, 0.0
            for _ in range(args.n):
                forged = mutate(data, rng)
                if forged is None:
                    counts["skipped"] += 1
                    continue
                t0 = time.perf_counter()
                result = outcome(forged)
                dt = time.perf_counter() - t0
                spent, worst = spent + dt, max(worst, dt)
                slow += dt > args.slow
                counts[result] += 1
                if result.startswith("OTHER") and result not in examples:
                    examples[result] = forged.hex()
            tried = args.n - counts["skipped"]
            rows.append({
                "file": family, "mutator": name, "tried": tried, **dict(sorted(counts.items())),
                "slow": slow, "worst_s": round(worst, 3), "decodes_per_s": round(tried / spent, 1) if spent else 0.0,
            })
            print(rows[-1], flush=True)
    columns = ["file", "mutator", "tried", "decoded", "skipped"] + sorted({k for r in rows for k in r if ":" in k}) + ["slow", "worst_s", "decodes_per_s"]
    print_table(rows, columns)
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) >> 10
    print(f"peak RSS grew by {growth} MiB during the run")
    write_json("fuzz", {"args": vars(args), "results": rows, "peak_rss_growth_mib": growth, "other_examples_hex": examples})


if __name__ == "__main__":
    main()
