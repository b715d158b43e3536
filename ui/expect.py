"""What to expect before a run, from the project's measured benchmarks (bench/results/*.json).

Nothing here is invented: every number shown comes from a recorded benchmark run on the
development machine (its CPU is named in the message). The only model applied on top is the
one a user can check: training time per pixel is about constant, so a clip with k times the
pixels of the measured one needs about k times the seconds to reach the same point of the
measured curve. Used by the app to say what a budget buys and to warn when it buys too little.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
USABLE_DB = 25.0  # below this the reconstruction is a visible blur (the 13 dB "green blur")


@dataclass(frozen=True)
class Measured:
    """One measured curve: PSNR after so many seconds of training, at a known size."""

    model: str
    params: int
    pixels: int  # width x height x frames of the measured input
    what: str  # the input in words
    curve: tuple[tuple[float, float], ...]  # (seconds, PSNR dB), increasing seconds
    machine: str


def _machine(data: dict) -> str:
    m = data.get("machine", {})
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {data.get('device', 'cpu')}; PSNR of the trained model before quantization"


@lru_cache(maxsize=1)
def measured() -> dict[tuple[str, str], Measured]:
    """(kind, model) -> Measured, from whichever result files are present."""
    out: dict[tuple[str, str], Measured] = {}
    try:
        video = json.loads((RESULTS / "video.json").read_text())
        t, h, w, _ = video["frames"]
        for r in video["results"]:
            curve = tuple((float(p["seconds"]), float(p["psnr"])) for p in r.get("curve", []))
            if curve:
                out[("video", r["model"])] = Measured(r["model"], int(r["params"]), t * h * w, f"{t} frames of {w}x{h}", curve, _machine(video))
    except (OSError, ValueError, KeyError):
        pass
    try:
        image = json.loads((RESULTS / "image.json").read_text())
        for r in image["fits"]:
            # bench_image.py fits inr/assets/bunny_256.png (256x256)
            out[("image", r["model"])] = Measured(r["model"], int(r["params"]), 256 * 256, "a 256x256 image",
                                                  ((float(r["seconds"]), float(r["psnr"])),), _machine(image))
    except (OSError, ValueError, KeyError):
        pass
    return out


# The RD benchmark of each kind (bench/bench_rd.py): the rate-aware family's measured points.
RD_FILES = {"video": "rd_bunny.json", "image": "rd_bunny256.json"}


def _rd_runs(kind: str) -> tuple[str, list[dict]]:
    try:
        rd = json.loads((RESULTS / RD_FILES[kind]).read_text())
    except (OSError, ValueError, KeyError):
        return "", []
    return _machine(rd).split(";")[0], rd.get("runs", [])


@lru_cache(maxsize=1)
def h264_points() -> tuple[tuple[float, float], ...]:
    """(bpp, PSNR) of x264 medium on the RD benchmark clip, for 'a codec gets this' context."""
    _, runs = _rd_runs("video")
    pts = {(float(p["bpp"]), float(p["psnr"])) for r in runs for p in r["points"]
           if p.get("method") == "h264" and p.get("preset") == "medium" and p.get("status", "ok") == "ok"}
    return tuple(sorted(pts))


def rate_aware(kind: str, model: str, pixels: int, seconds: float, size_bytes: float | None) -> Expectation | None:
    """For a rate-aware family, quality depends on the rate and the time: the measured point
    nearest the requested bpp in the benchmark run whose budget per pixel is nearest."""
    machine, runs = _rd_runs(kind)
    if not runs or not size_bytes:
        return None
    bpp = size_bytes * 8 / max(1, pixels)
    clip_pixels = {"video": 320 * 180 * 32, "image": 256 * 256}[kind]
    eff = seconds * clip_pixels / max(1, pixels)
    run = min(runs, key=lambda r: abs(r["seconds"] - eff))
    pts = [p for p in run["points"] if p.get("method") == model and p.get("status", "ok") == "ok"]
    if not pts:
        return None
    p = min(pts, key=lambda q: abs(q["bpp"] - bpp))
    what = "the bundled 320x180 32-frame clip" if kind == "video" else "a 256x256 image"
    text = (f"Measured ({machine}): {model} on {what} with {run['seconds']:g} s reached **{p['psnr']:.1f} dB at "
            f"{p['bpp']:.3f} bpp**; your {seconds:.0f} s on {pixels:,} pixels is like {eff:.0f} s there, at {bpp:.3f} bpp.")
    warn = p["psnr"] < USABLE_DB
    if warn:
        text += f" **Expect a soft picture (below {USABLE_DB:.0f} dB)**: give more bits or more seconds."
    return Expectation(text, warn)


def _interp(curve: tuple[tuple[float, float], ...], x: float) -> float:
    if x <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[-1][1]


@dataclass
class Expectation:
    text: str  # markdown, one short paragraph
    warn: bool  # the budget is too small for a usable result


def expect(kind: str, model: str, pixels: int, seconds: float, size_bytes: float | None, input_bytes: int | None,
           params: int | None = None) -> Expectation:
    """What `seconds` of training of `model` with about `params` parameters on `pixels`
    (w x h x frames) should give."""
    from inr.models.auto import resolve_model

    model = resolve_model(model, kind)[0]
    lines: list[str] = []
    warn = False
    if size_bytes is not None:
        size_txt = f"The .inr will be about {size_bytes / 1000:.1f} KB"
        if input_bytes:
            size_txt += f" (your file: {input_bytes / 1000:.1f} KB)"
            if size_bytes > input_bytes:
                warn = True
                size_txt += " - **larger than the file itself**: lower the budget (e.g. bits per pixel)"
        lines.append(size_txt + ".")
    if model == "grid":  # the size warning holds for the rate-aware family too
        found = rate_aware(kind, model, pixels, seconds, size_bytes)
        if found is not None:
            return Expectation(" ".join(lines + [found.text]), warn or found.warn)
    m = measured().get((kind, model))
    if m is None:
        lines.append(f"No measured result for {model} on {kind}s yet: no estimate.")
        return Expectation(" ".join(lines), warn)
    scale = m.pixels / max(1, pixels)  # seconds of training per measured-pixel-equivalent
    eff = seconds * scale
    first, last = m.curve[0], m.curve[-1]
    beyond = False
    if len(m.curve) > 1:
        est = _interp(m.curve, eff)
        beyond = eff > last[0]
        where = f"expect **{last[1]:.1f} dB or more**" if beyond else f"expect about **{est:.1f} dB**"
        lines.append(
            f"Measured ({m.machine}): {model} with {m.params / 1000:.0f}k parameters on {m.what} reached {first[1]:.1f} dB "
            f"after {first[0]:.0f} s and {last[1]:.1f} dB after {last[0]:.0f} s. Scaled to your input ({pixels:,} pixels), "
            f"{seconds:.0f} s is like {eff:.0f} s there: {where}."
        )
    else:
        t0, q0 = first
        lines.append(f"Measured ({m.machine}): {model} with {m.params / 1000:.0f}k parameters on {m.what} reached {q0:.1f} dB after {t0:.0f} s.")
        est = q0
        if eff >= 0.9 * t0:
            beyond = eff > 1.1 * t0
            lines.append(f"Your {seconds:.0f} s on {pixels:,} pixels is like {eff:.0f} s there: expect about {q0:.1f} dB{' or more' if beyond else ''}.")
        else:
            lines.append(f"Your {seconds:.0f} s on {pixels:,} pixels is like {eff:.0f} s there: expect less than {q0:.1f} dB.")
            if eff < 0.25 * t0:
                warn = True
                lines.append("**That is under a quarter of the measured training: give more seconds for a usable result.**")
    if params is not None and params < 0.5 * m.params:
        lines.append(f"Your budget is about {params / 1000:.0f}k parameters, under half of the measured {m.params / 1000:.0f}k: expect less.")
        return Expectation(" ".join(lines), warn)
    if est is not None and est < USABLE_DB and not beyond:
        warn = True
        ctx = ""
        codec = h264_points()
        if codec and kind == "video" and size_bytes:
            bpp = size_bytes * 8 / pixels
            cb, cq = min(codec, key=lambda p: abs(p[0] - bpp))
            ctx = f" For comparison, H.264 reached {cq:.1f} dB at {cb:.2f} bpp on the benchmark clip."
        lines.append(f"**This budget is too small for a usable result** (below {USABLE_DB:.0f} dB looks like a blur): give more seconds, or a smaller input.{ctx}")
    return Expectation(" ".join(lines), warn)
