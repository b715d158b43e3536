"""The Gradio front end: Fit (live PSNR and preview), Playback, Compare, Jobs.

The UI is a client of the job service: it submits jobs to the same store the REST API uses
and follows them by id, so the page can reload (or the browser close) without losing work:
on load it reattaches to the job the URL names (`/?job=ID`) or to the newest running one.
Lists refresh themselves on a timer. What is shown is computed in ui/views.py (plain
functions); what to expect before a run, from measured benchmarks, in ui/expect.py.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline, no telemetry

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from inr.errors import InrError  # noqa: E402
from server.api import ServerConfig  # noqa: E402
from server.jobs import COMPARE_RESULTS, DECODED, ENCODE_REPORT, ENCODED  # noqa: E402
from server.retention import blocked_paths, job_dir, preview_dir, served_paths, stage_upload  # noqa: E402
from server.service import submit  # noqa: E402
from server.store import JobStore  # noqa: E402
from ui import views  # noqa: E402
from ui.expect import expect  # noqa: E402
from video.options import DEFAULT_PRESETS  # noqa: E402
from video.playback import IMAGE_COMPANIONS  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "inr" / "assets" / "bunny_320x180_32f.mp4"
FINAL = views.FINAL
POLL_S = 1.0  # how often a followed job is re-read
LIST_REFRESH_S = 3.0  # how often job lists refresh themselves
log = logging.getLogger("inr.ui")


def _job_dir(cfg: ServerConfig, job_id: str) -> Path:
    return job_dir(cfg.data_dir, job_id)


def _artifact(cfg: ServerConfig, job: dict, name: str) -> str | None:
    path = _job_dir(cfg, job["id"]) / name
    return str(path) if name in job["artifacts"] and path.is_file() else None


def _json_artifact(cfg: ServerConfig, job: dict, name: str) -> dict | None:
    path = _artifact(cfg, job, name)
    return json.loads(Path(path).read_text()) if path else None


def refuse(message: str, name: str = "") -> None:
    """An expected user error: one line in the server log, the message in the page, no traceback."""
    log.warning("refused %s: %s", name or "request", message)
    raise gr.Error(message, print_exception=False)


def chosen_input(upload: str | None, use_sample: bool) -> tuple[Path, str]:
    """The file a run uses (the sample only when ticked, never silently) and its user-facing name."""
    if use_sample:
        return SAMPLE, SAMPLE.name
    if upload:
        return Path(upload), Path(upload).name
    raise InrError("no input: upload a video or image, or tick 'use the bundled sample'")


def _positive(value, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InrError(f"{what} must be a number, not '{value}'") from None
    if not x > 0:
        raise InrError(f"{what} must be positive, not {value}")
    return x


def build_ui(cfg: ServerConfig) -> gr.Blocks:
    store = JobStore(cfg.db_path)

    def status_of(job: dict) -> str:
        return views.status_text(job, store.list(500), cfg.workers)

    # ------------------------------------------------------------------ fit: input and expectations
    def expectation(upload, use_sample, model, budget_kind, budget, seconds) -> str:
        try:
            path, name = chosen_input(upload, use_sample)
            inp = views.describe_input(path, name)
            views.check_model(model, inp)
            params = views.parse_budget(budget_kind, budget)
            secs = _positive(seconds, "the time budget")
        except InrError as exc:
            return f"**Cannot start yet:** {exc}"
        size = views.expected_bytes(params, inp.pixels)
        n_params = int(size) if size is not None else None  # 8-bit weights: about one byte per parameter
        e = expect(inp.kind, model, inp.pixels, secs, size, inp.bytes, n_params)
        return ("**Warning.** " if e.warn else "") + e.text

    def on_input(upload, use_sample, model, budget_kind, budget, seconds):
        """A new input: describe it, offer only the models that handle it, give an untouched
        budget the default for its kind, re-estimate."""
        if upload and use_sample:
            use_sample = False  # a file just chosen wins over the sample box
        try:
            path, name = chosen_input(upload, use_sample)
        except InrError:
            return ("No input yet.", gr.update(choices=views.models_for(None)), gr.update(value=use_sample),
                    expectation(upload, use_sample, model, budget_kind, budget, seconds), gr.skip())
        try:
            inp = views.describe_input(path, name)
        except InrError as exc:
            log.warning("refused %s: %s", name, exc)
            return f"**{exc}**", gr.update(choices=views.models_for(None)), gr.update(value=use_sample), f"**Cannot start yet:** {exc}", gr.skip()
        names = views.models_for(inp.kind)
        if model not in names:
            model = views.default_model(inp.kind)
        budget = views.default_budget(inp.kind, budget_kind, budget)
        msg = inp.describe() + f". Models for {inp.kind}s: {', '.join(names)}."
        return (msg, gr.update(choices=names, value=model), gr.update(value=use_sample),
                expectation(upload, use_sample, model, budget_kind, budget, seconds), gr.update(value=budget))

    def on_sample(use_sample, upload, model, budget_kind, budget, seconds):
        if use_sample and upload:
            upload = None  # ticking the sample clears the file: one input at a time
        out = on_input(upload, use_sample, model, budget_kind, budget, seconds)
        return (gr.update(value=upload),) + out[:2] + out[3:]

    # ------------------------------------------------------------------ fit: run and follow
    def start_fit(upload, use_sample, model, budget_kind, budget, seconds):
        name = ""
        try:
            path, name = chosen_input(upload, use_sample)
            inp = views.describe_input(path, name)
            views.check_model(model, inp)
            params = {"model": model, "seconds": _positive(seconds, "the time budget"), **views.parse_budget(budget_kind, budget)}
            job = submit(store, stage_upload(cfg.data_dir, Path(path)), name, "encode", params, cfg.data_dir, cfg.limits)
        except InrError as exc:
            refuse(views.friendly(str(exc), name), name)
        log.info("job %s: encode %s %s", job["id"], name, params)
        return job["id"], status_of(job)

    def fit_view(job: dict):
        p = job["progress"]
        df = views.history_frame(p)
        preview = _snapshot(cfg, job["id"], p.get("preview"))
        status = status_of(job)
        if job["status"] == "done":
            rep = _json_artifact(cfg, job, ENCODE_REPORT)
            if rep:
                status = f"{status}: {views.encode_summary(rep)}. See it on the Playback tab."
            preview = _artifact(cfg, job, DECODED["image"]) or preview
        return df, preview, status

    def follow(job_id, view, missing):
        """Re-read the job every second until it ends; survives nothing and needs nothing:
        a reloaded page simply starts following again. `missing(text)` fills the outputs
        when there is no such job."""
        job = store.get(job_id) if job_id else None
        if job is None:
            yield missing(f"no job {job_id}" if job_id else gr.skip())
            return
        while True:
            job = store.get(job_id)
            yield view(job)
            if job["status"] in FINAL:
                return
            time.sleep(POLL_S)

    def follow_fit(job_id):
        yield from follow(job_id, fit_view, lambda text: (gr.skip(), gr.skip(), text))

    def cancel(job_id):
        job = store.get(job_id) if job_id else None
        if job is None:
            return "no job to cancel"
        if job["status"] in FINAL:
            return f"job {job_id} already {job['status']}"
        store.request_cancel(job_id)
        log.info("job %s: cancel requested from the app", job_id)
        return f"cancel requested for job {job_id}: it stops at its next step"

    # ------------------------------------------------------------------ reattach on load
    def attach(request: gr.Request):
        """The job the URL names (?job=ID), else the newest queued/running one of each kind;
        Compare falls back to the newest compare of any status, so a finished report is still
        on the page after a reload."""
        jobs = store.list(500)
        wanted = request.query_params.get("job", "") if request is not None else ""
        named = store.get(wanted) if wanted else None
        fit_id = cmp_id = ""
        if named and named["kind"] in ("encode", "fit"):
            fit_id = named["id"]
        elif named and named["kind"] == "compare":
            cmp_id = named["id"]
        for j in jobs:  # newest first
            if j["status"] in views.ACTIVE and j["kind"] == "encode" and not fit_id:
                fit_id = j["id"]
            if j["status"] in views.ACTIVE and j["kind"] == "compare" and not cmp_id:
                cmp_id = j["id"]
        cmp_id = cmp_id or next((j["id"] for j in jobs if j["kind"] == "compare"), "")
        pick_value = named["id"] if named and named["kind"] == "encode" and named["status"] == "done" else None
        return fit_id, cmp_id, gr.update(choices=encode_choices(), value=pick_value)

    # ------------------------------------------------------------------ playback
    def encode_choices() -> list[tuple[str, str]]:
        return [views.job_choice(j) for j in store.list(500) if j["kind"] == "encode" and j["status"] == "done"]

    def show_playback(job_id):
        job = store.get(job_id) if job_id else None
        if job is None or job["status"] != "done":
            note = f"job {job_id} is not available any more" if job_id else "Pick a finished job above."
            return (gr.update(visible=True), gr.update(visible=False), *([None] * 8), note, "", "", "", "", None)
        rep = _json_artifact(cfg, job, ENCODE_REPORT) or {}
        inr_txt = f"**INR ({rep.get('model', '?')})**: {views.encode_summary(rep)}" if rep else "**INR**"
        if _artifact(cfg, job, DECODED["image"]):  # an image job: images, with JPEG / WebP / AVIF of about the same size
            orig = _artifact(cfg, job, "original.png")
            o_txt = f"**original** (PNG, lossless, {Path(orig).stat().st_size:,} bytes)" if orig else "**original**: not kept for this job"
            refs, texts = [], []
            for codec, suffix in IMAGE_COMPANIONS:
                refs.append(_artifact(cfg, job, f"{codec}.{suffix}"))
                texts.append(views.companion_text(codec, _json_artifact(cfg, job, f"{codec}.json"), rep))
            return (gr.update(visible=False), gr.update(visible=True), None, None, None,
                    orig, _artifact(cfg, job, DECODED["image"]), *refs,
                    o_txt, inr_txt, *texts, _artifact(cfg, job, ENCODED))
        h = _json_artifact(cfg, job, "h264.json")
        h_txt = views.companion_text("h264", h, rep)
        return (gr.update(visible=True), gr.update(visible=False),
                _artifact(cfg, job, "original.mp4"), _artifact(cfg, job, DECODED["video"]), _artifact(cfg, job, "h264.mp4"),
                None, None, None, None, None,
                "**original** (re-encoded at CRF 10 for the browser)", inr_txt, h_txt, "", "", _artifact(cfg, job, ENCODED))

    def decode_upload(upload):
        if not upload:
            refuse("choose an .inr file first")
        name = Path(upload).name
        try:
            job = submit(store, stage_upload(cfg.data_dir, Path(upload)), name, "decode", {}, cfg.data_dir, cfg.limits)
        except InrError as exc:
            refuse(views.friendly(str(exc), name), name)
        while (job := store.get(job["id"]))["status"] not in FINAL:
            time.sleep(0.3)
        if job["status"] != "done":
            refuse(views.friendly(job["error"], name), name)
        image = _artifact(cfg, job, DECODED["image"])
        video = _artifact(cfg, job, DECODED["video"])
        what = f"{name}: decoded to {'an image' if image else 'a video'} (job {job['id']})"
        return gr.update(value=video, visible=video is not None), gr.update(value=image, visible=image is not None), what

    # ------------------------------------------------------------------ compare
    def start_compare(upload, use_sample, models_sel, bpps, seconds):
        name = ""
        try:
            path, name = chosen_input(upload, use_sample)
            inp = views.describe_input(path, name)
            if inp.kind != "video":
                raise InrError(f"{name} is an image: compare needs a video")
            try:
                bpp_list = [float(b) for b in str(bpps).replace(" ", "").split(",") if b]
            except ValueError:
                raise InrError(f"target bpp must be numbers separated by commas, such as 0.1,0.2, not '{bpps}'") from None
            if not models_sel:
                raise InrError("tick at least one INR model")
            params = {"models": list(models_sel), "bpps": bpp_list, "seconds": _positive(seconds, "seconds per point"), "presets": list(DEFAULT_PRESETS)}
            job = submit(store, stage_upload(cfg.data_dir, Path(path)), name, "compare", params, cfg.data_dir, cfg.limits)
        except InrError as exc:
            refuse(views.friendly(str(exc), name), name)
        return job["id"], status_of(job)

    def compare_view(job: dict):
        status = status_of(job)
        n = len(job["params"].get("models", [])) * len(job["params"].get("bpps", []))
        if job["status"] == "running":
            done, secs = views.compare_points(_job_dir(cfg, job["id"]))
            eta = f", about {secs / done * (n - done):.0f} s left" if done else ""
            status = f"{status} - INR point {min(done + 1, n)} of {n}{eta}"
        if job["status"] != "done":
            return status, gr.skip(), gr.skip()
        url = f"/api/jobs/{job['id']}/artifacts/report/report.html"
        frame = (f'<p><a href="{url}" target="_blank">open the report in a new tab</a></p>'
                 f'<iframe id="cmp-frame" src="{url}" style="width:100%;height:80vh;border:1px solid #ddd;resize:vertical"></iframe>')
        points = _json_artifact(cfg, job, COMPARE_RESULTS) or {}
        return f"{status}: {n} INR points and the codec curves measured", frame, views.results_table(points.get("points", []))

    def follow_compare(job_id):
        yield from follow(job_id, compare_view, lambda text: (text, gr.skip(), gr.skip()))

    def compare_plan(models_sel, bpps, seconds) -> str:
        try:
            n = len(models_sel or []) * len([b for b in str(bpps).split(",") if b.strip()])
            secs = _positive(seconds, "seconds per point")
        except InrError as exc:
            return f"**Cannot start yet:** {exc}"
        return (f"{n} INR point(s) of {secs:.0f} s of training each, and rate control may fit a point more than once "
                f"to hit its bpp: expect at least {n * secs / 60:.1f} min, plus about a minute for the H.264/H.265 curves.")

    # ------------------------------------------------------------------ jobs
    def cancel_choices() -> list[tuple[str, str]]:
        return [views.job_choice(j) for j in store.list(500) if j["status"] in views.ACTIVE]

    def refresh_lists(pick_value, shown_html, cancel_value, last_key):
        """Timer: new choices (a picked job that vanished is unpicked), a new table only when it changed."""
        jobs = store.list(500)
        picks = [views.job_choice(j) for j in jobs if j["kind"] == "encode" and j["status"] == "done"]
        actives = [views.job_choice(j) for j in jobs if j["status"] in views.ACTIVE]
        table = views.jobs_table_html(jobs)
        key = json.dumps([picks, actives])
        ids = {v for _, v in picks}
        stale_pick = pick_value and pick_value not in ids
        stale_cancel = cancel_value and cancel_value not in {v for _, v in actives}
        pick_up = gr.update(choices=picks, value=None if stale_pick else pick_value) if key != last_key or stale_pick else gr.skip()
        cancel_up = gr.update(choices=actives, value=None if stale_cancel else cancel_value) if key != last_key or stale_cancel else gr.skip()
        return pick_up, (table if table != shown_html else gr.skip()), cancel_up, key

    # ------------------------------------------------------------------ layout
    with gr.Blocks(title="inr-codec") as demo:  # theme, css and js are passed at mount (Gradio 6)
        gr.Markdown("# inr-codec\nStore a video or an image as a neural network, then compare it with H.264/H.265 or JPEG.")
        fit_job = gr.Textbox(visible=False, elem_id="fit-job")
        cmp_job = gr.Textbox(visible=False, elem_id="cmp-job")
        lists_key = gr.State("")
        with gr.Tab("Fit", id="fit"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="video or image", file_types=["video", "image"], elem_id="fit-upload")
                    use_sample = gr.Checkbox(label="use the bundled sample instead (Big Buck Bunny, 32 frames, 320x180)", value=False, elem_id="fit-sample")
                    input_md = gr.Markdown("No input yet.", elem_id="fit-input")
                    model = gr.Dropdown(views.models_for(None), value=views.default_model("video"), label="model (only those that handle the input)", elem_id="fit-model")
                    budget_kind = gr.Radio(["bits per pixel", "parameters"], value="bits per pixel", label="size budget", elem_id="fit-budget-kind")
                    budget = gr.Textbox(value=views.DEFAULT_BPP["video"], label="budget (e.g. 0.2 bits per pixel, or 100k parameters)", elem_id="fit-budget")
                    seconds = gr.Number(value=60, label="time budget (seconds of training)", elem_id="fit-seconds")
                    expect_md = gr.Markdown("Choose an input to see what to expect.", elem_id="fit-expect")
                    with gr.Row():
                        start = gr.Button("Start", variant="primary", elem_id="fit-start")
                        stop = gr.Button("Cancel", elem_id="fit-cancel")
                with gr.Column():
                    plot = gr.LinePlot(pd.DataFrame({"seconds": [], "PSNR (dB)": [], "phase": []}), x="seconds", y="PSNR (dB)", color="phase",
                                       title="PSNR while training (fit, prune, QAT on one time axis)", x_title="seconds since the job started",
                                       elem_id="fit-plot")
                    preview = gr.Image(label="current reconstruction (middle frame)", elem_id="fit-preview", height=320)
                    status = gr.Textbox(label="status", value="No job yet.", elem_id="fit-status", lines=2)
            fit_inputs = [upload, use_sample, model, budget_kind, budget, seconds]
            upload.change(on_input, fit_inputs, [input_md, model, use_sample, expect_md, budget], show_progress="hidden")
            use_sample.input(on_sample, [use_sample, upload, model, budget_kind, budget, seconds], [upload, input_md, model, expect_md, budget], show_progress="hidden")
            for comp in (model, budget_kind, budget, seconds):
                comp.input(expectation, fit_inputs, expect_md, show_progress="hidden")
            (start.click(start_fit, fit_inputs, [fit_job, status])
             .success(None, fit_job, None, js=SET_URL_JS)
             .success(follow_fit, fit_job, [plot, preview, status], show_progress="hidden", concurrency_limit=None))
            stop.click(cancel, fit_job, status)
        with gr.Tab("Playback", id="playback"):
            pick = gr.Dropdown(choices=[], value=None, label="finished encode job (the list refreshes itself)", elem_id="play-pick", allow_custom_value=True)
            with gr.Row(elem_id="play-row") as video_row:  # the three players are kept in sync (SYNC_JS)
                v_orig = gr.Video(label="original", elem_id="play-original", height=300)
                v_inr = gr.Video(label="INR", elem_id="play-inr", height=300)
                v_ref = gr.Video(label="H.264 at about the same size", elem_id="play-h264", height=300)
            with gr.Column(elem_id="play-img-row", visible=False) as image_row:
                with gr.Row():
                    i_orig = gr.Image(label="original", elem_id="play-img-original", height=300)
                    i_inr = gr.Image(label="INR", elem_id="play-img-inr", height=300)
                with gr.Row():
                    i_refs = [gr.Image(label=f"{codec.upper() if codec != 'webp' else 'WebP'} at about the same size", elem_id=f"play-img-{codec}", height=300)
                              for codec, _ in IMAGE_COMPANIONS]
            with gr.Row():
                t_orig = gr.Markdown("Pick a finished job above.", elem_id="play-orig-stats")
                t_inr = gr.Markdown(elem_id="play-inr-stats")
                t_ref = gr.Markdown(elem_id="play-ref-stats")
                t_refs = [gr.Markdown(elem_id=f"play-{codec}-stats") for codec, _ in IMAGE_COMPANIONS[1:]]
            download = gr.File(label="download the .inr file", elem_id="play-download")
            pick.change(show_playback, pick, [video_row, image_row, v_orig, v_inr, v_ref, i_orig, i_inr, *i_refs, t_orig, t_inr, t_ref, *t_refs, download])
            gr.Markdown("### Decode an .inr file")
            with gr.Row():
                inr_up = gr.File(label=".inr file", file_types=[".inr"], elem_id="dec-upload")
                with gr.Column():
                    dec_btn = gr.Button("Decode", elem_id="dec-go")
                    dec_status = gr.Markdown(elem_id="dec-status")
            with gr.Row():
                dec_video = gr.Video(label="decoded video", elem_id="dec-video", height=320, visible=False)
                dec_image = gr.Image(label="decoded image", elem_id="dec-image", height=320, visible=False)
            dec_btn.click(decode_upload, inr_up, [dec_video, dec_image, dec_status])
        with gr.Tab("Compare", id="compare"):
            with gr.Row():
                with gr.Column():
                    c_up = gr.File(label="video", file_types=["video"], elem_id="cmp-upload")
                    c_sample = gr.Checkbox(label="use the bundled sample instead", value=False, elem_id="cmp-sample")
                    c_models = gr.CheckboxGroup(views.models_for("video"), value=["auto"], label="INR models", elem_id="cmp-models")
                    c_bpp = gr.Textbox(value="0.2,0.4", label="target bpp (comma-separated)", elem_id="cmp-bpp")
                    c_sec = gr.Number(value=45, label="seconds of training per INR point", elem_id="cmp-seconds")
                    c_plan = gr.Markdown(compare_plan(["auto"], "0.2,0.4", 45), elem_id="cmp-plan")
                    with gr.Row():
                        c_go = gr.Button("Run compare", variant="primary", elem_id="cmp-go")
                        c_stop = gr.Button("Cancel", elem_id="cmp-cancel")
                with gr.Column():
                    c_status = gr.Textbox(label="status", value="No compare yet.", elem_id="cmp-status", lines=2)
            c_report = gr.HTML(elem_id="cmp-report")
            c_table = gr.Dataframe(label="every point", elem_id="cmp-table", visible=True, value=pd.DataFrame({"method": []}))
            for comp in (c_models, c_bpp, c_sec):
                comp.input(compare_plan, [c_models, c_bpp, c_sec], c_plan, show_progress="hidden")
            (c_go.click(start_compare, [c_up, c_sample, c_models, c_bpp, c_sec], [cmp_job, c_status])
             .success(None, cmp_job, None, js=SET_URL_JS)
             .success(follow_compare, cmp_job, [c_status, c_report, c_table], show_progress="hidden", concurrency_limit=None))
            c_stop.click(cancel, cmp_job, c_status)
        with gr.Tab("Jobs", id="jobs"):
            jobs_html = gr.HTML(views.jobs_table_html([]), elem_id="jobs-table")
            with gr.Row():
                j_pick = gr.Dropdown(choices=[], value=None, label="queued or running job", elem_id="jobs-cancel-pick", allow_custom_value=True)
                j_cancel = gr.Button("Cancel this job", elem_id="jobs-cancel")
            j_status = gr.Markdown(elem_id="jobs-status")
            j_cancel.click(cancel, j_pick, j_status)
        timer = gr.Timer(LIST_REFRESH_S)
        lists = [pick, jobs_html, j_pick, lists_key]
        timer.tick(refresh_lists, lists, lists, show_progress="hidden", concurrency_limit=None)
        loaded = demo.load(attach, None, [fit_job, cmp_job, pick])
        loaded.then(refresh_lists, lists, lists, show_progress="hidden")
        loaded.then(follow_fit, fit_job, [plot, preview, status], show_progress="hidden", concurrency_limit=None)
        loaded.then(follow_compare, cmp_job, [c_status, c_report, c_table], show_progress="hidden", concurrency_limit=None)
    return demo


# After a start, the URL names the job (?job=ID): a reload or a shared link comes back to it.
SET_URL_JS = """
(id) => { if (id) { const u = new URL(window.location.href); u.searchParams.set('job', id); window.history.replaceState(null, '', u); } }
"""

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

# Small videos are shown at their size, not stretched; the jobs table is readable.
CSS = """
#play-row video, #dec-video video { object-fit: contain; }
#jobs-list { border-collapse: collapse; font-size: 13px; }
#jobs-list td, #jobs-list th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
"""


def _snapshot(cfg: ServerConfig, job_id: str, name: str | None) -> str | None:
    """A copy of a file the worker keeps rewriting (preview.png), so Gradio never reads half a
    file; one copy per version of the file, older copies of the same job's file removed.
    Several pages may follow one job at once (a reload opens a second stream before the
    first ends), so each call copies under its own temporary name and never removes the
    version it returns: with one shared `.part` name one stream's rename took the other's
    file away and the FileNotFoundError ended that page's progress."""
    if not name:
        return None
    path = _job_dir(cfg, job_id) / name
    try:
        version = path.stat().st_mtime_ns
    except OSError:
        return None
    snaps = preview_dir(cfg.data_dir)  # served, and swept by server.retention
    snaps.mkdir(parents=True, exist_ok=True)
    snap = snaps / f"{job_id}-{version}-{Path(name).name}"
    if not snap.is_file():
        for old in snaps.glob(f"{job_id}-*-{Path(name).name}"):
            if old != snap:
                old.unlink(missing_ok=True)
        tmp = snaps / f".{uuid.uuid4().hex}.part"
        try:
            shutil.copyfile(path, tmp)
            tmp.replace(snap)
        except OSError:  # the worker removed its file meanwhile: no preview this time
            tmp.unlink(missing_ok=True)
            return str(snap) if snap.is_file() else None
    return str(snap)


def mount_ui(app, cfg: ServerConfig):
    demo = build_ui(cfg)
    demo.queue(default_concurrency_limit=4)
    # System fonts only: the default theme fetches web fonts, which an offline machine can't.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    return gr.mount_gradio_app(
        app, demo, path="/", allowed_paths=served_paths(cfg.data_dir), blocked_paths=blocked_paths(cfg.data_dir), footer_links=[], theme=theme, js=SYNC_JS, css=CSS,
        max_file_size=cfg.limits.max_upload_bytes,
    )
