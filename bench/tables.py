"""Print the README's benchmark tables (markdown) from bench/results/*.json.

    python bench/tables.py

Every number in the README's benchmark section comes from these files, which record the
command's arguments and the machine they ran on.
"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(h for h, _ in cols) + " |\n|" + "|".join("---" for _ in cols) + "|\n"
    body = ""
    for r in rows:
        cells = []
        for _, k in cols:
            v = r.get(k, "")
            cells.append(f"{v:.2f}" if isinstance(v, float) else str(v))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def machine(d: dict) -> str:
    m = d["machine"]
    return f"_{m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['date']}, commit {m.get('commit', '?')}, args {d['args']}_"


def speed_table(results: list[dict]) -> str:
    """One row per family: fp32 eager, the default plan, and each speed-up alone (--ablate)."""
    rows: dict[str, dict] = {}
    for r in results:
        row = rows.setdefault(r["model"], {"model": r["model"], "params": r["params"]})
        row[r["variant"]] = f"{r['ms_per_step']:.1f}" if r["variant"] == "off" else f"{r['ms_per_step']:.1f} (x{r['speedup']:.2f})"
        if r["variant"] == "on":
            row["plan"] = r["plan"]
    cols = [("model", "model"), ("params", "params"), ("fp32 eager ms/step", "off"), ("default plan", "plan"), ("default ms/step", "on")]
    cols += [(f"{k} alone", k) for k in ("+amp", "+channels_last", "+fused_adam", "+input_cache", "+compile") if any(k in r for r in rows.values())]
    return table(list(rows.values()), cols)


def main() -> None:
    for name in ("speed", "image", "video", "export", "decode", "rd", "rd_bunny", "rd_bunny_480", "rd_carphone", "rd_bunny256", "lr"):
        f = RESULTS / f"{name}.json"
        if not f.is_file():
            continue
        d = json.loads(f.read_text())
        print(f"### {name}\n\n{machine(d)}\n")
        if name == "speed":
            print(speed_table(d["results"]))
        elif name == "image":
            print(table(d["fits"], [("model", "model"), ("params", "params"), ("seconds", "seconds"), ("steps", "steps"), ("PSNR dB", "psnr"), ("SSIM", "ssim")]))
            print(table([{**r, "mpts": f"{r['points_per_s'] / 1e6:.2f} M"} for r in d["hashgrid_fwd_bwd"]], [("hash grid input", "input"), ("points/step", "points"), ("fwd+bwd points/s", "mpts")]))
        elif name == "video":
            print(table(d["results"], [("model", "model"), ("params", "params"), ("epochs", "epochs"), ("train s", "train_seconds"), ("PSNR dB", "psnr"), ("MS-SSIM", "msssim"), ("decode fps", "decode_fps")]))
            epochs = [c["epoch"] for c in d["results"][0]["curve"]]
            rows = [{"epoch": e, **{r["model"]: f"{c['psnr']:.2f} dB / {c['seconds']:.0f} s" for r in d["results"] for c in r["curve"] if c["epoch"] == e}} for e in epochs]
            print(table(rows, [("epoch", "epoch")] + [(r["model"], r["model"]) for r in d["results"]]))
        elif name == "export":
            print(f"float model before export: {d['float_psnr']:.2f} dB ({d['fit_seconds']} s fit)\n")
            print(table(d["results"], [("bits", "bits"), ("prune", "prune"), ("bytes", "bytes"), ("bpp", "bpp"), ("PSNR dB", "psnr"), ("MS-SSIM", "msssim"), ("export s", "export_s"), ("decode fps", "decode_fps")]))
        elif name == "decode":
            print(table(d["results"], [("model", "model"), ("size", "size"), ("frames", "frames"), ("bytes", "bytes"), ("decode fps (forward)", "fps"), ("fps from file", "fps_from_file")]))
        elif name == "lr":
            print(table([{**r, "lr": f"{r['lr']:g}"} for r in d["results"]], [("lr", "lr"), ("steps", "steps"), ("epochs", "epochs"), ("PSNR dB", "psnr")]))
        elif name == "rd":
            print(table(d["points"], [("method", "method"), ("preset", "preset"), ("setting", "setting"), ("bytes", "bytes"), ("bpp", "bpp"), ("PSNR", "psnr"), ("Y-PSNR", "psnr_y"), ("MS-SSIM", "msssim"), ("encode s", "encode_seconds")]))
            print("BD-rate (%):", json.dumps(d["bd_rate"]))
        elif name.startswith("rd_"):
            for run in d["runs"]:
                print(f"#### {d['clip']}, {run['seconds']:g} s per INR point\n")
                ok = [p for p in run["points"] if p.get("status", "ok") == "ok"]
                print(table(ok, [("method", "method"), ("preset", "preset"), ("setting", "setting"), ("bytes", "bytes"), ("bpp", "bpp"), ("PSNR", "psnr"), ("Y-PSNR", "psnr_y"), ("MS-SSIM", "msssim"), ("encode s", "encode_seconds")]))
                for p in run["points"]:
                    if p.get("status", "ok") != "ok":
                        print(f"- {p['method']} @ {p['setting']}: failed ({p.get('error')})")
                print("BD-rate (%):", json.dumps(run["bd_rate"]), "\n")


if __name__ == "__main__":
    main()
