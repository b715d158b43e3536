"""What the app shows, as plain functions of jobs and files (no Gradio here, so they test fast).

Inputs are described and checked in the user's words (their file name, never a server path);
job progress becomes one time axis with labelled phases; job lists become readable tables.
"""
from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from inr.errors import InrError
from server.jobs import ENCODE_REPORT

FINAL = {"done", "failed", "cancelled"}
ACTIVE = {"queued", "running"}
# Files the service stores as generated names: never show them to a user.
_SERVER_PATH = re.compile(r"(/[^\s'\"]*)?/(uploads|incoming|jobs)/[0-9a-f]{8,}[^\s'\":,]*")


@dataclass
class InputInfo:
    """A chosen input in words: what kind it is and how big (for model choice and estimates)."""

    name: str
    kind: str  # "image" | "video"
    width: int
    height: int
    frames: int
    bytes: int

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames

    def describe(self) -> str:
        what = f"image, {self.width}x{self.height}" if self.kind == "image" else f"video, {self.frames} frames of {self.width}x{self.height}"
        return f"**{html.escape(self.name)}**: {what}, {self.bytes / 1000:.1f} KB"


def describe_input(path: str | Path, name: str | None = None) -> InputInfo:
    """Probe a chosen file; InrError (with the user's file name) when it is not usable media."""
    from video.media import probe

    path = Path(path)
    name = name or path.name
    try:
        info = probe(path)
    except InrError as exc:
        raise InrError(f"{name}: not a readable video or image ({friendly(str(exc), name, path)})") from None
    return InputInfo(name, info.kind, int(info.width), int(info.height), max(1, int(info.frames)), path.stat().st_size)


def models_for(kind: str | None) -> list[str]:
    """The registered models that handle `kind` (all of them when nothing is chosen yet)."""
    from inr.models.auto import models_for as handled_by

    return handled_by(kind)


def default_model(kind: str | None) -> str:
    """`auto`: inr.models.auto picks the family for the input (the rate-aware grid)."""
    from inr.models.auto import AUTO

    return AUTO


# The first budget offered: a rate, so the .inr is sized to the input (a parameter count gave a
# 95.6 KB .inr for a 53.9 KB PNG); values from the RD benchmarks (bench/results/rd_bunny*.json:
# 60 s of the default family gave 27.3 dB on the clip at 0.2 bpp, 37.4 dB on a 256x256 image at 0.5 bpp).
DEFAULT_BPP = {"video": "0.2", "image": "0.5"}


def default_budget(kind: str, budget_kind: str, budget: str) -> str:
    """The budget for a new input of `kind`: a bpp budget still at a default follows the
    input's kind; anything the user typed is kept."""
    if budget_kind == "bits per pixel" and str(budget).strip() in DEFAULT_BPP.values():
        return DEFAULT_BPP[kind]
    return budget


def check_model(model: str, inp: InputInfo) -> None:
    """Refuse a model that cannot represent this input, naming the file and what would work."""
    from inr.models.auto import check_handles

    check_handles(model, inp.kind, inp.name)


CODEC_NAMES = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF", "h264": "H.264"}


def companion_text(codec: str, info: dict | None, inr_report: dict | None) -> str:
    """The caption under a reference codec's picture: its setting, bytes, bpp and PSNR, and a
    plain word when it could not be brought to the .inr's size."""
    name = CODEC_NAMES.get(codec, codec)
    if not info:
        return f"**{name}**: none for this job"
    setting = f"CRF {info['crf']}" if "crf" in info else f"quality {info['quality']}"  # video / image codecs
    text = f"**{name} ({setting})**: {info['bytes']:,} bytes, {info['bpp']:.3f} bpp, PSNR {info['psnr']:.2f} dB"
    inr_bytes = (inr_report or {}).get("bytes")
    if inr_bytes and not info.get("fits", True):
        text += f" (even the lowest {name} quality is larger than the .inr here)"
    elif inr_bytes and info["bytes"] < 0.8 * inr_bytes:
        text += f" (even the best {name} is smaller than the .inr here)"
    return text


def friendly(message: str, name: str, *paths: str | Path) -> str:
    """An error in the user's terms: their file name instead of server paths and upload names."""
    for p in paths:
        if p:
            message = message.replace(str(p), name)
    return _SERVER_PATH.sub(name, message).splitlines()[0] if message else message


def parse_budget(kind: str, text: str) -> dict:
    """The size budget as job parameters, with a message a person understands."""
    from inr.models import parse_param_budget

    text = str(text).strip()
    if kind == "bits per pixel":
        try:
            bpp = float(text.removesuffix("bpp").strip())
        except ValueError:
            raise InrError(f"bits per pixel must be a number such as 0.2, not '{text}'") from None
        if not bpp > 0:
            raise InrError(f"bits per pixel must be positive, not '{text}'")
        return {"bpp": bpp}
    parse_param_budget(text)  # raises InrError with the accepted forms
    return {"params": text}


def expected_bytes(params: dict, pixels: int, bits: int = 8) -> float | None:
    """About how big the .inr will be: bpp x pixels, or parameters x bits (before entropy coding)."""
    from inr.models import parse_param_budget

    if "bpp" in params:
        return params["bpp"] * pixels / 8
    if "params" in params:
        return parse_param_budget(str(params["params"])) * bits / 8
    return None


# ------------------------------------------------------------------ progress
def history_frame(progress: dict) -> pd.DataFrame:
    """PSNR over seconds since the job started, one row per sample, labelled by phase.

    Older jobs recorded [step, psnr] only: they are drawn over steps in one phase."""
    rows = []
    for r in progress.get("history", []):
        if len(r) >= 4:
            rows.append((float(r[2]), float(r[1]), str(r[3])))
        elif len(r) >= 2:
            rows.append((float(r[0]), float(r[1]), "fit"))
    return pd.DataFrame(rows, columns=["seconds", "PSNR (dB)", "phase"])


def queue_position(job: dict, jobs: list[dict]) -> int:
    """How many queued jobs were submitted before this one (workers take the oldest first)."""
    return sum(1 for j in jobs if j["status"] == "queued" and j["created"] < job["created"])


def status_text(job: dict, jobs: list[dict], workers: int) -> str:
    """One line on where a job stands: why it waits, what phase it is in, or how it ended."""
    jid, st, p = job["id"], job["status"], job.get("progress") or {}
    name = job.get("input_name", "")
    if st == "queued":
        ahead = queue_position(job, jobs)
        running = sum(1 for j in jobs if j["status"] == "running")
        why = f"{ahead} job(s) ahead of it" if ahead else f"{running} job(s) running on {workers} worker(s)" if running >= workers else "a worker is picking it up"
        return f"queued (job {jid}, {name}): waiting, {why}"
    if st == "running":
        parts = [f"running (job {jid}, {name})", p.get("phase", "starting")]
        if p.get("step"):
            parts.append(f"step {p['step']}, PSNR {p['psnr']:.2f} dB")
        if p.get("progress") is not None:
            parts.append(f"{100 * p.get('progress', 0):.0f} % of this phase")
        if p.get("eta") is not None:
            parts.append(f"phase ETA {p['eta']:.0f} s")
        if p.get("points"):
            parts.append(p["points"])
        return " - ".join(parts)
    if st == "done":
        return f"done (job {jid}, {name})"
    return f"{st} (job {jid}, {name}): {friendly(job.get('error', ''), name)}"


def encode_summary(report: dict) -> str:
    return f"{report['bytes']:,} bytes, {report['bpp']:.3f} bpp, PSNR {report['psnr']:.2f} dB (measured on the decoded file)"


# ------------------------------------------------------------------ jobs table
def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _duration(job: dict) -> str:
    if not job.get("started"):
        return ""
    end = job.get("finished") or time.time()
    return f"{end - job['started']:.0f} s"


def settings_text(job: dict) -> str:
    """The settings a person chose, short: model, budget, time."""
    p = job.get("params") or {}
    bits = []
    if job["kind"] == "compare":
        bits.append(",".join(p.get("models", [])))
        bits.append("bpp " + ",".join(f"{b:g}" for b in p.get("bpps", [])))
    elif "model" in p:
        bits.append(str(p["model"]))
    for key, fmt in (("params", "{} params"), ("bpp", "{} bpp"), ("seconds", "{:g} s"), ("epochs", "{} epochs"), ("steps", "{} steps")):
        if key in p:
            bits.append(fmt.format(p[key]))
    return ", ".join(b for b in bits if b)


def jobs_table_html(jobs: list[dict]) -> str:
    """Every job with its times, input, settings, status and artifacts (opened inline where
    a browser can show them: the server sends those with Content-Disposition: inline)."""
    if not jobs:
        return '<p id="jobs-empty">No jobs yet: start one on the Fit or Compare tab.</p>'
    e = html.escape
    rows = []
    for j in jobs:
        links = " ".join(f'<a href="/api/jobs/{e(j["id"])}/artifacts/{e(a)}" target="_blank">{e(Path(a).name)}</a>'
                         for a in j["artifacts"] if not a.endswith(".json") or a == ENCODE_REPORT)
        err = friendly(j.get("error", ""), j.get("input_name", ""))
        rows.append(
            f"<tr><td>{e(j['id'])}</td><td>{e(_when(j['created']))}</td><td>{e(_duration(j))}</td><td>{e(j['kind'])}</td>"
            f"<td>{e(j['input_name'])}</td><td>{e(settings_text(j))}</td><td>{e(j['status'])}</td>"
            f"<td>{e(err[:200])}</td><td>{links}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("id", "submitted", "ran for", "kind", "input", "settings", "status", "error", "artifacts"))
    return f'<table id="jobs-list"><tr>{head}</tr>{"".join(rows)}</table>'


def job_choice(job: dict) -> tuple[str, str]:
    """(label, value) for a dropdown of jobs: the label says what it is, the value is the id."""
    return f"{job['input_name']} - {settings_text(job)} ({job['id']})", job["id"]


def results_table(rows: list[dict]) -> pd.DataFrame:
    """The compare points a person reads: method, setting, bytes, bpp, quality, time; 2 decimals."""
    cols = ["method", "preset", "setting", "bytes", "bpp", "psnr", "psnr_y", "msssim", "encode_seconds"]
    df = pd.DataFrame(rows)
    df = df[[c for c in cols if c in df.columns]]
    return df.round({"bpp": 4, "psnr": 2, "psnr_y": 2, "msssim": 4, "encode_seconds": 1})


def compare_points(job_dir: Path) -> tuple[int, float]:
    """(INR points finished, seconds they took) of a running compare job, from its point cache."""
    done, secs = 0, 0.0
    for f in (job_dir / "report" / "points").glob("*.json"):
        try:
            pt = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if pt.get("kind") == "inr":
            done += 1
            secs += float(pt.get("encode_seconds", 0.0))
    return done, secs
