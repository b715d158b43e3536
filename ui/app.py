"""The Gradio front end: Fit (live PSNR and preview), Playback, Compare, Jobs.

The UI is a client of the job service: it submits jobs to the same store the REST API uses
and polls them, so the browser can close and reopen without losing work, and fits run in
the worker processes, never in the web server.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline, no telemetry

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from inr.errors import InrError  # noqa: E402
from server.api import ServerConfig  # noqa: E402
from server.service import submit  # noqa: E402
from server.store import JobStore  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "inr" / "assets" / "bunny_320x180_32f.mp4"
FINAL = {"done", "failed", "cancelled"}


def _job_dir(cfg: ServerConfig, job_id: str) -> Path:
    return cfg.data_dir / "jobs" / job_id


def _artifact(cfg: ServerConfig, job: dict, name: str) -> str | None:
    path = _job_dir(cfg, job["id"]) / name
    return str(path) if name in job["artifacts"] and path.is_file() else None


def _copy_upload(path: str) -> Path:
    """Gradio's temp files belong to Gradio; the service consumes its own copy."""
    tmp = Path(tempfile.mkdtemp(prefix="inr-ui-")) / "upload"
    shutil.copyfile(path, tmp)
    return tmp


def build_ui(cfg: ServerConfig) -> gr.Blocks:
    store = JobStore(cfg.db_path)
    from inr.models import all_specs

    models = [s.name for s in all_specs()]

    # ------------------------------------------------------------------ fit
    def start_fit(upload, use_sample, model, budget_kind, budget, seconds, progress=gr.Progress()):
        path = SAMPLE if use_sample or not upload else Path(upload)
        name = path.name
        params: dict = {"model": model, "seconds": float(seconds)}
        if budget_kind == "bits per pixel":
            params["bpp"] = float(budget)
        else:
            params["params"] = str(budget)
        try:
            job = submit(store, _copy_upload(str(path)), name, "encode", params, cfg.data_dir, cfg.limits)
        except InrError as exc:
            raise gr.Error(str(exc)) from None
        job_id = job["id"]
        while True:
            job = store.get(job_id)
            p = job["progress"]
            hist = p.get("history", [])
            df = pd.DataFrame(hist or [[0, 0.0]], columns=["step", "PSNR (dB)"])
            prev = _artifact_any(cfg, job_id, p.get("preview"))
            status = f"job {job_id}: {job['status']}"
            if p.get("step"):
                eta = p.get("eta")
                status += f" - step {p['step']}, PSNR {p['psnr']:.2f} dB" + (f", ETA {eta:.0f} s" if eta is not None else "")
            progress(p.get("progress", 0.0), desc=status)
            if job["status"] in FINAL:
                if job["status"] == "done":
                    rep = json.loads(Path(_artifact(cfg, job, "output.inr.json")).read_text())
                    status = f"done (job {job_id}): {rep['bytes']} bytes, {rep['bpp']:.4f} bpp, PSNR {rep['psnr']:.2f} dB (measured on the decoded file)"
                else:
                    status = f"{job['status']} (job {job_id}): {job['error']}"
                yield df, prev, status, job_id
                return
            yield df, prev, status, job_id
            time.sleep(1.0)

    def cancel(job_id):
        if job_id:
            store.request_cancel(job_id)
            return f"cancel requested for job {job_id}"
        return "no job running"

    # ------------------------------------------------------------------ playback
    def encode_jobs():
        return [f"{j['id']}  {j['input_name']}  ({j['status']})" for j in store.list() if j["kind"] == "encode" and j["status"] == "done"]

    def show_playback(choice):
        if not choice:
            return None, None, None, "", "", "", None
        job = store.get(choice.split()[0])
        rep = json.loads(Path(_artifact(cfg, job, "output.inr.json")).read_text())
        h264 = _artifact(cfg, job, "h264.json")
        h = json.loads(Path(h264).read_text()) if h264 else None
        orig = _artifact(cfg, job, "original.mp4")
        inr_txt = f"INR ({rep['model']}): {rep['bytes']} bytes, {rep['bpp']:.4f} bpp, PSNR {rep['psnr']:.2f} dB"
        h_txt = f"H.264 (CRF {h['crf']}): {h['bytes']} bytes, {h['bpp']:.4f} bpp, PSNR {h['psnr']:.2f} dB" if h else "(image: no H.264)"
        return orig, _artifact(cfg, job, "decoded.mp4"), _artifact(cfg, job, "h264.mp4"), "original (re-encoded at CRF 10 for the browser)", inr_txt, h_txt, _artifact(cfg, job, "output.inr")

    def decode_upload(upload, progress=gr.Progress()):
        if not upload:
            raise gr.Error("upload an .inr file first")
        try:
            job = submit(store, _copy_upload(upload), Path(upload).name, "decode", {}, cfg.data_dir, cfg.limits)
        except InrError as exc:
            raise gr.Error(str(exc)) from None
        while (job := store.get(job["id"]))["status"] not in FINAL:
            progress(0.5, desc="decoding")
            time.sleep(0.5)
        if job["status"] != "done":
            raise gr.Error(job["error"])
        return _artifact(cfg, job, "decoded.mp4") or _artifact(cfg, job, "decoded.png")

    # ------------------------------------------------------------------ compare
    def run_compare(upload, use_sample, models_sel, bpps, seconds, progress=gr.Progress()):
        path = SAMPLE if use_sample or not upload else Path(upload)
        try:
            params = {"models": models_sel or ["hnerv"], "bpps": [float(b) for b in str(bpps).split(",")], "seconds": float(seconds), "presets": ["medium", "veryslow"]}
            job = submit(store, _copy_upload(str(path)), path.name, "compare", params, cfg.data_dir, cfg.limits)
        except (InrError, ValueError) as exc:
            raise gr.Error(str(exc)) from None
        while (job := store.get(job["id"]))["status"] not in FINAL:
            progress(job["progress"].get("progress", 0.0), desc=f"compare job {job['id']}: {job['status']}")
            time.sleep(1.0)
        if job["status"] != "done":
            raise gr.Error(job["error"] or job["status"])
        report = Path(_artifact(cfg, job, "report/report.html")).read_text()
        table = pd.read_csv(_artifact(cfg, job, "report/results.csv"))
        frame = f'<iframe style="width:100%;height:900px;border:0" srcdoc="{_attr(report)}"></iframe>'
        return frame, table

    # ------------------------------------------------------------------ jobs
    def jobs_table():
        rows = []
        for j in store.list():
            links = " ".join(f'<a href="/api/jobs/{j["id"]}/artifacts/{a}" target="_blank">{a}</a>' for a in j["artifacts"])
            rows.append(f"<tr><td>{j['id']}</td><td>{j['kind']}</td><td>{j['input_name']}</td><td>{j['status']}</td>"
                        f"<td>{_attr(j['error'][:200])}</td><td>{links}</td></tr>")
        return "<table><tr><th>id</th><th>kind</th><th>input</th><th>status</th><th>error</th><th>artifacts</th></tr>" + "".join(rows) + "</table>"

    with gr.Blocks(title="inr-codec") as demo:  # theme and js are passed at mount (Gradio 6)
        gr.Markdown("# inr-codec\nStore a video as a neural network, then compare it with H.264/H.265.")
        with gr.Tab("Fit"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="video or image", file_types=["video", "image"], elem_id="fit-upload")
                    use_sample = gr.Checkbox(label="use the bundled sample (Big Buck Bunny, 32 frames, 320x180)", value=False, elem_id="fit-sample")
                    model = gr.Dropdown(models, value="hnerv", label="model", elem_id="fit-model")
                    budget_kind = gr.Radio(["bits per pixel", "parameters"], value="parameters", label="size budget")
                    budget = gr.Textbox(value="100k", label="budget (e.g. 0.2 bpp, or 100k parameters)", elem_id="fit-budget")
                    seconds = gr.Number(value=60, label="time budget (seconds)", elem_id="fit-seconds")
                    with gr.Row():
                        start = gr.Button("Start", variant="primary", elem_id="fit-start")
                        stop = gr.Button("Cancel", elem_id="fit-cancel")
                with gr.Column():
                    plot = gr.LinePlot(x="step", y="PSNR (dB)", title="PSNR while training", elem_id="fit-plot")
                    preview = gr.Image(label="current reconstruction (middle frame)", elem_id="fit-preview")
                    status = gr.Textbox(label="status", elem_id="fit-status")
            job_state = gr.State("")
            start.click(start_fit, [upload, use_sample, model, budget_kind, budget, seconds], [plot, preview, status, job_state])
            stop.click(cancel, job_state, status)
        with gr.Tab("Playback"):
            pick = gr.Dropdown(choices=encode_jobs(), label="finished encode job", elem_id="play-pick")
            refresh = gr.Button("Refresh list")
            with gr.Row(elem_id="play-row"):  # the three players are kept in sync (SYNC_JS)
                v_orig, v_inr, v_h264 = gr.Video(label="original", elem_id="play-original"), gr.Video(label="INR", elem_id="play-inr"), gr.Video(label="H.264", elem_id="play-h264")
            with gr.Row():
                t_orig, t_inr, t_h264 = gr.Markdown(), gr.Markdown(elem_id="play-inr-stats"), gr.Markdown()
            download = gr.File(label="download the .inr file")
            refresh.click(lambda: gr.update(choices=encode_jobs()), None, pick)
            pick.change(show_playback, pick, [v_orig, v_inr, v_h264, t_orig, t_inr, t_h264, download])
            gr.Markdown("### Decode an .inr file")
            inr_up = gr.File(label=".inr file", file_types=[".inr"])
            decoded = gr.Video(label="decoded")
            gr.Button("Decode").click(decode_upload, inr_up, decoded)
        with gr.Tab("Compare"):
            c_up = gr.File(label="video", file_types=["video"])
            c_sample = gr.Checkbox(label="use the bundled sample", value=True)
            c_models = gr.CheckboxGroup([s.name for s in all_specs() if "video" in s.signals], value=["hnerv"], label="INR models")
            c_bpp = gr.Textbox(value="0.2,0.4", label="target bpp (comma-separated)")
            c_sec = gr.Number(value=45, label="seconds per INR point")
            c_go = gr.Button("Run compare", variant="primary")
            c_report = gr.HTML()
            c_table = gr.Dataframe(label="every point")
            c_go.click(run_compare, [c_up, c_sample, c_models, c_bpp, c_sec], [c_report, c_table])
        with gr.Tab("Jobs"):
            jobs_html = gr.HTML(jobs_table())
            gr.Button("Refresh").click(jobs_table, None, jobs_html)
    return demo


# Play, pause and seek on any of the three playback videos is mirrored on the other two.
SYNC_JS = """
() => {
  let busy = false;
  const others = (v) => [...document.querySelectorAll('#play-row video')].filter((o) => o !== v);
  function sync(e, act) {
    const v = e.target;
    if (busy || !(v instanceof HTMLVideoElement) || !v.closest('#play-row')) return;
    busy = true;
    try { others(v).forEach((o) => act(o, v)); } finally { setTimeout(() => { busy = false; }, 50); }
  }
  document.addEventListener('play', (e) => sync(e, (o, v) => { o.currentTime = v.currentTime; o.muted = true; o.play(); }), true);
  document.addEventListener('pause', (e) => sync(e, (o, v) => { o.pause(); o.currentTime = v.currentTime; }), true);
  document.addEventListener('seeked', (e) => sync(e, (o, v) => { if (Math.abs(o.currentTime - v.currentTime) > 0.05) o.currentTime = v.currentTime; }), true);
  window.inrPlaybackSync = true;
}
"""


def _artifact_any(cfg: ServerConfig, job_id: str, name: str | None) -> str | None:
    if not name:
        return None
    path = _job_dir(cfg, job_id) / name
    if not path.is_file():
        return None
    snap = Path(tempfile.mkdtemp(prefix="inr-preview-")) / name  # the worker rewrites preview.png
    shutil.copyfile(path, snap)
    return str(snap)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def mount_ui(app, cfg: ServerConfig):
    demo = build_ui(cfg)
    demo.queue(default_concurrency_limit=4)
    # System fonts only: the default theme fetches web fonts, which an offline machine can't.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    return gr.mount_gradio_app(
        app, demo, path="/", allowed_paths=[str(cfg.data_dir)], footer_links=[], theme=theme, js=SYNC_JS,
        max_file_size=cfg.limits.max_upload_bytes,
    )
