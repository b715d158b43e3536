"""Self-contained HTML for `inr compare`: inline SVG charts and base64 PNG crops, no network.

Failed points (an INR target that could not be met) are listed with their reason and left
out of the curves, the crops and the BD-rate; the rest of the page is drawn as usual.
"""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def line_chart(series: list[dict], xlabel: str, ylabel: str, logx: bool = False, title: str = "") -> str:
    """series: [{"name", "x": [...], "y": [...]}] -> an SVG string."""
    W, H, L, R, T, B = 640, 380, 60, 170, 30, 45
    xs = [x for s in series for x in s["x"] if x > 0 or not logx]
    ys = [y for s in series for y in s["y"] if math.isfinite(y)]
    if not xs or not ys:
        return "<p>(no data)</p>"
    fx = (lambda v: math.log10(v)) if logx else (lambda v: v)
    x0, x1 = fx(min(xs)), fx(max(xs))
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.05 or 0.5
    y0, y1 = y0 - pad, y1 + pad
    px = lambda v: L + (fx(v) - x0) / (x1 - x0) * (W - L - R)  # noqa: E731
    py = lambda v: H - B - (v - y0) / (y1 - y0) * (H - T - B)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">']
    out.append(f'<text x="{W / 2 - R / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>')
    out.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#444"/>')
    for yt in _ticks(y0, y1):
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{py(yt):.1f}" y2="{py(yt):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{L - 5}" y="{py(yt) + 4:.1f}" text-anchor="end">{yt:g}</text>')
    if logx:
        xt = [10**e * m for e in range(math.floor(x0), math.ceil(x1) + 1) for m in (1, 2, 5) if x0 <= math.log10(10**e * m) <= x1]
    else:
        xt = _ticks(x0, x1)
    for v in xt:
        out.append(f'<text x="{px(v):.1f}" y="{H - B + 15}" text-anchor="middle">{v:g}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 {(T + H - B) / 2})">{html.escape(ylabel)}</text>')
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        pts = [(px(x), py(y)) for x, y in zip(s["x"], s["y"]) if math.isfinite(y) and (x > 0 or not logx)]
        if not pts:
            continue
        dash = ' stroke-dasharray="5,3"' if s.get("dashed") else ""
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>')
        for a, b in pts:
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>')
        ly = T + 14 + 16 * i
        out.append(f'<line x1="{W - R + 10}" x2="{W - R + 30}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{W - R + 35}" y="{ly}">{html.escape(s["name"])}</text>')
    out.append("</svg>")
    return "".join(out)


def _ok(p: dict) -> bool:
    """Measured, not failed (points cached before statuses existed were measured)."""
    return p.get("status", "ok") == "ok"


def _label(p: dict) -> str:
    return p["method"] if p["kind"] == "inr" else f"{p['method']} {p['preset']}"


def _png_data(frame: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _crop(frame: np.ndarray, max_w: int = 320, max_h: int = 180) -> np.ndarray:
    h, w = frame.shape[:2]
    ch, cw = min(h, max_h), min(w, max_w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return frame[top : top + ch, left : left + cw]


def _series(points: list[dict], y: str) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for p in (p for p in points if _ok(p)):
        groups.setdefault(_label(p), []).append(p)
    out = []
    for name, ps in groups.items():
        ps = sorted(ps, key=lambda p: p["bpp"])
        out.append({"name": name, "x": [p["bpp"] for p in ps], "y": [p[y] for p in ps], "dashed": ps[0]["kind"] == "codec"})
    return out


def closest(points: list[dict], bpp: float) -> dict[str, dict]:
    """For each method/preset, the point whose bpp is closest (in log scale) to `bpp`."""
    best: dict[str, dict] = {}
    for p in points:
        if not _ok(p):
            continue
        k = _label(p)
        if k not in best or abs(math.log(p["bpp"] / bpp)) < abs(math.log(best[k]["bpp"] / bpp)):
            best[k] = p
    return best


def render_html(results: dict, original_frame: np.ndarray, points_dir: Path) -> str:
    """The report page for a video (frames x H x W) or an image (one frame, no fps)."""
    everything = results["points"]
    pts = [p for p in everything if _ok(p)]
    failed = [p for p in everything if not _ok(p)]
    is_image = results.get("kind") == "image"
    inr_pts = [p for p in pts if p["kind"] == "inr"]
    ref_pts = inr_pts or pts
    ref_bpp = float(np.median([p["bpp"] for p in ref_pts])) if ref_pts else 1.0
    near = closest(pts, ref_bpp)
    e = html.escape
    if is_image:
        title = f"INR vs image codecs: {e(Path(results['input']).name)}"
        about = (f"One image, {results['width']}x{results['height']}. bpp = bits / (width x height). Sizes: {e(results['size_note'])}. "
                 "Quality: RGB PSNR and MS-SSIM, and Y-PSNR on YUV 4:2:0. Each codec point links to its file and the PNG it decodes to.")
        shown = "The image, centre crop"
    else:
        title = f"INR vs H.264/H.265: {e(Path(results['input']).name)}"
        about = (f"{results['frames']} frames, {results['width']}x{results['height']}, {results['fps']:g} fps. "
                 f"bpp = bits / (frames x width x height). Sizes: {e(results['size_note'])}. "
                 "Quality: RGB PSNR and MS-SSIM, and Y-PSNR on YUV 4:2:0, means over frames.")
        shown = f"Frame {results['frames'] // 2}, centre crop"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>inr compare</title>",
        "<style>body{font-family:sans-serif;margin:24px;max-width:1400px}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}tr.failed td{color:#a00}"
        ".crops img{image-rendering:pixelated;width:320px;margin-right:8px}.crops figure{display:inline-block;margin:0 8px 0 0}</style>",
        "</head><body>",
        f"<h1>{title}</h1>",
        f"<p>{about}</p>",
    ]
    if failed:
        parts.append(f"<p class='failed'><b>{len(failed)} point(s) could not be made</b> and are left out of the curves and the BD-rate:</p><ul>")
        parts += [f"<li>{e(p['method'])} at {p['setting']} bpp: {e(p.get('error', ''))}</li>" for p in failed]
        parts.append("</ul>")
    parts += [
        "<h2>Rate-distortion</h2>",
        line_chart(_series(pts, "psnr"), "bits per pixel", "PSNR (dB, RGB)", logx=True, title="PSNR vs bpp"),
        line_chart(_series(pts, "msssim"), "bits per pixel", "MS-SSIM", logx=True, title="MS-SSIM vs bpp"),
        "<h2>BD-rate of each INR against each codec</h2><p>Percent bits relative to the codec for equal PSNR "
        "(negative: the INR needs fewer bits); PCHIP interpolation over the overlapping PSNR range; blank: curves do not overlap "
        "or fewer than two points of a curve were made.</p>",
        _bd_html(results),
    ]
    if not is_image:
        parts += [
            f"<h2>Per-frame PSNR near {ref_bpp:.3g} bpp</h2>",
            line_chart(
                [{"name": f"{k} ({p['bpp']:.3g} bpp)", "x": list(range(len(p["per_frame_psnr"]))), "y": p["per_frame_psnr"], "dashed": p["kind"] == "codec"} for k, p in near.items()],
                "frame", "PSNR (dB)", title="per-frame PSNR",
            ),
        ]
    crop = (lambda f: _crop(f, 320, 320)) if is_image else _crop
    parts += [f"<h2>{shown}, each method near {ref_bpp:.3g} bpp</h2><div class='crops'>",
              f"<figure><img src='{_png_data(crop(original_frame))}'><figcaption>original</figcaption></figure>"]
    for k, p in near.items():
        if p["kind"] == "inr" or is_image or p["method"] == "h264":
            png = points_dir / f"{p['key']}.png"
            if png.is_file():
                frame = np.asarray(Image.open(png).convert("RGB"))
                parts.append(f"<figure><img src='{_png_data(crop(frame))}'><figcaption>{e(k)}: {p['bpp']:.3g} bpp, {p['psnr']:.2f} dB</figcaption></figure>")
    parts.append("</div><h2>Every point</h2><table><tr><th>method</th><th>preset</th><th>setting</th><th>bytes</th><th>bpp</th>"
                 "<th>PSNR</th><th>Y-PSNR</th><th>MS-SSIM</th><th>encode s</th><th>decode fps</th>"
                 + ("<th>files</th>" if is_image else "") + "</tr>")
    for p in sorted(pts, key=lambda p: (p["kind"], p["method"], p["preset"], p["bpp"])):
        files = ""
        if is_image:
            files = "<td>" + " ".join(f"<a href='{e(p[f])}'>{n}</a>" for f, n in (("file", "file"), ("decoded_png", "png")) if f in p) + "</td>"
        parts.append(
            f"<tr><td style='text-align:left'>{e(p['method'])}</td><td>{e(p['preset'])}</td><td>{p['setting']}</td><td>{p['bytes']}</td>"
            f"<td>{p['bpp']:.4f}</td><td>{p['psnr']:.2f}</td><td>{p['psnr_y']:.2f}</td><td>{p['msssim']:.4f}</td>"
            f"<td>{p['encode_seconds']:.2f}</td><td>{p['decode_fps']:.1f}</td>{files}</tr>"
        )
    span = 8 if is_image else 7
    for p in failed:
        parts.append(f"<tr class='failed'><td style='text-align:left'>{e(p['method'])}</td><td>{e(p['preset'])}</td><td>{p['setting']}</td>"
                     f"<td colspan='{span}' style='text-align:left'>failed: {e(p.get('error', ''))}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def _bd_html(results: dict) -> str:
    rows = ["<table><tr><th>INR</th><th>codec</th><th>preset</th><th>BD-rate %</th><th>BD-PSNR dB</th></tr>"]
    for model, codecs in results["bd_rate"].items():
        for codec, presets in codecs.items():
            for preset, v in presets.items():
                d = results["bd_psnr"][model][codec][preset]
                rows.append(
                    f"<tr><td style='text-align:left'>{html.escape(model)}</td><td>{codec}</td><td>{preset}</td>"
                    f"<td>{'' if v is None else f'{v:+.1f}'}</td><td>{'' if d is None else f'{d:+.2f}'}</td></tr>"
                )
    rows.append("</table>")
    return "".join(rows)
