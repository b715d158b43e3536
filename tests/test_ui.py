"""The Gradio app: its view functions directly, then a real `inr ui` process through
gradio_client, then Chromium (Debian's) through Playwright. Inputs are tiny and fits last
a few seconds: the point is the app's behaviour, not the quality of the fits."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from inr.errors import InrError

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


# ------------------------------------------------------------------ views, no server
def test_models_offered_follow_the_input_and_refusals_name_the_file(tmp_path):
    from ui import views

    assert "hnerv" not in views.models_for("image") and "hashgrid" in views.models_for("image")
    assert "hnerv" in views.models_for("video")
    assert views.default_model("image") in views.models_for("image")
    png = tmp_path / "holiday.png"
    shutil.copyfile(ROOT / "inr" / "assets" / "bunny_256.png", png)
    inp = views.describe_input(png)
    assert (inp.kind, inp.width, inp.height, inp.frames) == ("image", 256, 256, 1)
    with pytest.raises(InrError, match=r"holiday\.png is an image.*'hnerv'.*hashgrid"):
        views.check_model("hnerv", inp)
    views.check_model("hashgrid", inp)
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello")
    with pytest.raises(InrError, match=r"^notes\.mp4: not a readable") as exc:
        views.describe_input(bad)
    assert str(tmp_path) not in str(exc.value)


def test_budget_and_errors_in_the_users_words():
    from ui import views

    assert views.parse_budget("bits per pixel", "0.2") == {"bpp": 0.2}
    assert views.parse_budget("parameters", "100k") == {"params": "100k"}
    with pytest.raises(InrError, match="must be a number such as 0.2, not 'abc'"):
        views.parse_budget("bits per pixel", "abc")
    with pytest.raises(InrError):
        views.parse_budget("parameters", "lots")
    assert views.expected_bytes({"bpp": 0.5}, 1600) == 100
    assert views.default_budget("image", "bits per pixel", views.DEFAULT_BPP["video"]) == views.DEFAULT_BPP["image"]
    assert views.default_budget("image", "bits per pixel", "0.7") == "0.7"  # what a user typed stays
    assert views.default_budget("image", "parameters", "100k") == "100k"
    msg = "/data/uploads/0123456789abcdef0123456789abcdef.png: cannot decode\n  Traceback..."
    assert views.friendly(msg, "cat.png") == "cat.png: cannot decode"


def test_codec_captions_say_when_sizes_could_not_match():
    from ui import views

    inr = {"bytes": 31_703}
    h264 = views.companion_text("h264", {"crf": 0, "bytes": 13_217, "bpp": 2.151, "psnr": 36.254}, inr)
    assert h264.startswith("**H.264 (CRF 0)**: 13,217 bytes, 2.151 bpp, PSNR 36.25 dB") and "even the best H.264 is smaller" in h264
    jpeg = views.companion_text("jpeg", {"quality": 5, "bytes": 900, "bpp": 3.1, "psnr": 30.0, "fits": False}, {"bytes": 500})
    assert "JPEG (quality 5)" in jpeg and "even the lowest JPEG quality is larger" in jpeg
    assert views.companion_text("avif", None, inr) == "**AVIF**: none for this job"


def test_progress_is_one_time_axis_with_phases():
    from ui import views

    hist = [[1, 10.0, 0.5, "fit"], [50, 20.0, 10.0, "fit"], [1, 18.0, 11.0, "prune"], [1, 19.0, 12.5, "qat"], [9, 21.0, 14.0, "qat"]]
    df = views.history_frame({"history": hist})
    assert list(df["seconds"]) == sorted(df["seconds"])  # steps restart, time does not
    assert list(dict.fromkeys(df["phase"])) == ["fit", "prune", "qat"]
    old = views.history_frame({"history": [[1, 10.0], [2, 11.0]]})  # jobs recorded before phases
    assert list(old["phase"]) == ["fit", "fit"]
    assert views.history_frame({}).empty


def test_job_list_and_queue_reason():
    from ui import views

    now = time.time()
    running = {"id": "a1", "kind": "encode", "input_name": "clip.mp4", "status": "running", "created": now - 9, "started": now - 8,
               "finished": None, "params": {"model": "hnerv", "params": "100k", "seconds": 60}, "artifacts": [], "error": "",
               "progress": {"phase": "qat", "step": 3, "psnr": 21.234, "progress": 0.5, "eta": 4.0}}
    queued = {**running, "id": "b2", "status": "queued", "created": now, "started": None, "progress": {}}
    assert "waiting, 1 job(s) running on 1 worker(s)" in views.status_text(queued, [running, queued], workers=1)
    assert re.search(r"qat - step 3, PSNR 21\.23 dB - 50 %", views.status_text(running, [running, queued], 1))
    table = views.jobs_table_html([running, queued])
    assert "hnerv, 100k params, 60 s" in table and "clip.mp4" in table and "running" in table
    assert "No jobs yet" in views.jobs_table_html([])


def test_pages_following_one_job_share_its_preview_without_breaking(tmp_path):
    """A reload opens a second stream on a running job while the first still polls: both copy
    the worker's preview at once. Every call must return a whole, existing copy (a shared
    temporary name once made one stream's rename take the other's file: FileNotFoundError,
    and that page's progress stopped)."""
    import threading

    from server.api import ServerConfig
    from server.retention import job_dir
    from ui.app import _snapshot

    cfg = ServerConfig(data_dir=tmp_path)
    preview = job_dir(tmp_path, "job1") / "preview.png"
    preview.parent.mkdir(parents=True)
    payload = os.urandom(200_000)
    preview.write_bytes(payload)
    start, errors, returned = threading.Barrier(8), [], []

    def follow():
        start.wait()
        try:
            for _ in range(25):
                returned.append(_snapshot(cfg, "job1", "preview.png"))
        except Exception as exc:  # noqa: BLE001 - the test reports what a stream would die of
            errors.append(exc)

    threads = [threading.Thread(target=follow) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(returned)) == 1 and Path(returned[0]).read_bytes() == payload
    assert [p.name for p in (tmp_path / "previews").iterdir()] == [Path(returned[0]).name]  # no .part left


def test_expectations_come_from_the_measured_tables():
    from ui.expect import RESULTS, expect

    image = json.loads((RESULTS / "image.json").read_text())
    hashgrid = next(r for r in image["fits"] if r["model"] == "hashgrid")
    e = expect("image", "hashgrid", 256 * 256, hashgrid["seconds"], 8000, 50_000)
    assert f"{hashgrid['psnr']:.1f} dB" in e.text and not e.warn
    big = expect("image", "hashgrid", 256 * 256, 60, 100_000, 50_000)
    assert big.warn and "larger than the file itself" in big.text
    grid_big = expect("image", "auto", 48 * 48, 4, 8000, 1348)  # the default family warns about size too
    assert grid_big.warn and "larger than the file itself" in grid_big.text and "Measured" in grid_big.text
    video = json.loads((RESULTS / "video.json").read_text())
    hnerv = next(r for r in video["results"] if r["model"] == "hnerv")
    t, h, w, _ = video["frames"]
    short = expect("video", "hnerv", t * h * w, hnerv["curve"][0]["seconds"], 10_000, None)
    assert short.warn and "too small for a usable result" in short.text and f"{hnerv['curve'][0]['psnr']:.1f} dB" in short.text


# ------------------------------------------------------------------ a real server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("ui-data")
    port = _free_port()
    log = data / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONWARNINGS": "ignore"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "ui", "--port", str(port), "--data-dir", str(data), "--max-upload-mb", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "api/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(log.read_text())
            time.sleep(0.5)
    url_log = (url, log)
    yield url_log
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def small_png(tmp_path_factory) -> Path:
    """A 48x48 crop of a real frame: a fit of a few seconds shows something."""
    from video.media import load_image, save_image

    return save_image(tmp_path_factory.mktemp("img") / "crop.png", load_image(ROOT / "inr" / "assets" / "bunny_256.png")[100:148, 100:148])


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def _api(url: str, path: str, method: str = "GET") -> dict:
    with urllib.request.urlopen(urllib.request.Request(url + path, method=method)) as r:
        return json.loads(r.read())


def test_the_app_serves_job_files_but_never_the_database(ui_server):
    """Gradio's file route reaches job artifacts only: not the job database, the log or uploads."""
    import urllib.error

    url, log = ui_server
    data = log.parent
    artifact = data / "jobs" / "probe" / "note.txt"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_text("served")

    def status(path: Path) -> int:
        try:
            with urllib.request.urlopen(url + f"gradio_api/file={path}", timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert (data / "jobs.sqlite").is_file()
    assert status(artifact) == 200
    for private in (data / "jobs.sqlite", log):
        assert status(private) in (403, 404), private


def test_video_fit_through_gradio_client(ui_server, tiny_clip_file):
    from gradio_client import handle_file

    url, _ = ui_server
    client = _client(url)
    job_id, status = client.predict(handle_file(str(tiny_clip_file)), False, "nerv", "parameters", "30k", 6, api_name="/start_fit")
    assert job_id and "tiny.mkv" in status
    plot, preview, status = client.predict(job_id, api_name="/follow_fit")
    assert status.startswith("done"), status
    assert re.search(r"PSNR \d+\.\d+ dB", status)
    phases = {r[-1] for r in _api(url, f"api/jobs/{job_id}")["progress"]["history"]}
    assert "fit" in phases and "qat" in phases  # the plot's labels: one time axis, phases named


def test_image_fit_and_playback_through_gradio_client(ui_server, small_png):
    from gradio_client import handle_file

    url, _ = ui_server
    client = _client(url)
    job_id, _ = client.predict(handle_file(str(small_png)), False, "hashgrid", "parameters", "8k", 4, api_name="/start_fit")
    *_, status = client.predict(job_id, api_name="/follow_fit")
    assert status.startswith("done"), status
    out = client.predict(job_id, api_name="/show_playback")
    *_, i_orig, i_inr, i_jpeg, i_webp, i_avif, t_orig, t_inr, t_jpeg, t_webp, t_avif, download = out
    images = (i_orig, i_inr, i_jpeg, i_webp, i_avif)
    assert all(Path(p).is_file() for p in images), out
    assert [Path(p).suffix for p in images[2:]] == [".jpg", ".webp", ".avif"]
    for codec, text in (("JPEG", t_jpeg), ("WebP", t_webp), ("AVIF", t_avif)):
        assert re.search(codec + r" \(quality \d+\)\**: [\d,]+ bytes, \d\.\d+ bpp, PSNR \d+\.\d+ dB", text), text
    assert "INR (hashgrid)" in t_inr and Path(download).suffix == ".inr"
    # the image .inr decodes to an image, shown as one
    video, image, what = client.predict(handle_file(download), api_name="/decode_upload")
    assert "decoded to an image" in what and Path(image["value"] if isinstance(image, dict) else image).suffix == ".png"
    # artifacts a browser can show open inline; the .inr downloads
    with urllib.request.urlopen(f"{url}api/jobs/{job_id}/artifacts/jpeg.jpg") as r:
        assert r.headers["content-disposition"].startswith("inline")
    with urllib.request.urlopen(f"{url}api/jobs/{job_id}/artifacts/output.inr") as r:
        assert r.headers["content-disposition"].startswith("attachment")


def test_refusals_are_clear_and_log_one_line(ui_server, tmp_path, small_png):
    from gradio_client import handle_file

    url, log = ui_server
    client = _client(url)
    photo = tmp_path / "my photo.png"
    shutil.copyfile(small_png, photo)
    with pytest.raises(Exception, match=r"my photo\.png is an image, which model 'hnerv' does not handle"):
        client.predict(handle_file(str(photo)), False, "hnerv", "parameters", "30k", 5, api_name="/start_fit")
    with pytest.raises(Exception, match="no input: upload a video or image, or tick"):
        client.predict(None, False, "nerv", "parameters", "30k", 5, api_name="/start_fit")
    with pytest.raises(Exception, match="bits per pixel must be a number"):
        client.predict(handle_file(str(photo)), False, "hashgrid", "bits per pixel", "lots", 5, api_name="/start_fit")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(Exception, match=r"fake\.mp4: not a readable video or image"):
        client.predict(handle_file(str(fake)), False, "nerv", "parameters", "30k", 5, api_name="/start_fit")
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2 << 20))
    with pytest.raises(Exception, match="(?i)exceed|too large|size"):
        client.predict(handle_file(str(big)), False, "nerv", "parameters", "30k", 5, api_name="/start_fit")
    corrupt = tmp_path / "corrupt.inr"
    corrupt.write_bytes(b"INRC" + bytes(64))
    with pytest.raises(Exception, match="(?i)inr|header|corrupt"):
        client.predict(handle_file(str(corrupt)), api_name="/decode_upload")
    assert _api(url, "api/health")["ok"]
    text = log.read_text()
    assert "refused my photo.png: my photo.png is an image" in text
    assert "Traceback" not in text, text[-3000:]


# ------------------------------------------------------------------ the browser
def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium and playwright (see .ci/run)")
        pytest.skip("needs Debian's chromium and the playwright package")
    return chromium, sync_playwright


def _start(page, button: str) -> str:
    """Click a start button; the id of the job it created, read from the URL the page sets
    (?job=ID). Waiting on the status box alone would race with the previous job's status."""
    before = page.url
    page.locator(button).click()
    page.wait_for_function("(before) => location.href !== before && new URL(location.href).searchParams.get('job')", arg=before, timeout=60_000)
    return re.search(r"[?&]job=(\w+)", page.url).group(1)


def _wait_status(page, selector: str, prefixes: tuple[str, ...], job_id: str, timeout_ms: int = 180_000) -> str:
    """The status box's text once it is about `job_id` and starts with one of `prefixes`."""
    box = page.locator(selector)
    page.wait_for_function("([el, ps, id]) => el.value.includes(id) && ps.some((p) => el.value.startsWith(p))",
                           arg=[box.element_handle(), list(prefixes), job_id], timeout=timeout_ms)
    return box.input_value()


def test_browser_end_to_end(ui_server, tiny_clip_file, small_png):
    """Real Chromium: refuse a PNG for a video-only model, fit an image and see it, fit a video
    and play it in sync, reload during a job and cancel it, run a compare and find its report
    again after a reload, screenshot every tab."""
    chromium, sync_playwright = _browser()
    url, _ = ui_server
    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        external: list[str] = []
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
        try:
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#fit-start").wait_for(timeout=60_000)
            page.wait_for_function("() => window.inrPlaybackSync === true", timeout=30_000)
            status = "#fit-status textarea"

            # a PNG: only image models are offered; forcing hnerv at submit is refused by name
            page.locator("#fit-upload input[type=file]").set_input_files(str(small_png))
            page.locator("#fit-input").get_by_text("crop.png").wait_for(timeout=30_000)
            assert page.locator("#fit-input").inner_text().count("hnerv") == 0
            page.locator("#fit-model input").click()
            offered = [t.split()[-1] for t in page.get_by_role("option").all_inner_texts()]  # the picked one has a check mark
            assert "hashgrid" in offered and "hnerv" not in offered, offered
            page.keyboard.press("Escape")
            budget = page.locator("#fit-budget textarea, #fit-budget input").first
            assert budget.input_value() == "0.5"  # the default budget is a rate, the image's default
            page.locator("#fit-budget-kind").get_by_label("parameters").check()
            budget.fill("8k")
            page.locator("#fit-seconds input").first.fill("4")
            image_job = _start(page, "#fit-start")  # the URL names the job
            assert _wait_status(page, status, ("done", "failed"), image_job).startswith("done")
            page.screenshot(path=str(ARTIFACTS / "ui_fit.png"), full_page=True)
            page.get_by_role("tab", name="Playback").click()
            page.locator("#play-pick input").click()
            page.get_by_role("option", name=re.compile(image_job)).click()
            for el in ("#play-img-original img", "#play-img-inr img", "#play-img-jpeg img", "#play-img-webp img", "#play-img-avif img"):
                page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=page.locator(el).element_handle(timeout=30_000), timeout=30_000)
            assert re.search(r"JPEG \(quality \d+\)", page.locator("#play-ref-stats").inner_text())
            assert re.search(r"AVIF \(quality \d+\)", page.locator("#play-avif-stats").inner_text())
            page.screenshot(path=str(ARTIFACTS / "ui_playback_image.png"), full_page=True)

            # a video: fit, then the three players play in sync
            page.get_by_role("tab", name="Fit").click()
            page.locator("#fit-upload").get_by_label("Clear").click()
            page.locator("#fit-upload input[type=file]").set_input_files(str(tiny_clip_file))
            page.locator("#fit-input").get_by_text("tiny.mkv").wait_for(timeout=30_000)
            page.locator("#fit-model input").click()
            page.get_by_role("option", name="nerv", exact=True).click()
            page.locator("#fit-budget textarea, #fit-budget input").first.fill("30k")
            page.locator("#fit-seconds input").first.fill("6")
            video_job = _start(page, "#fit-start")
            assert _wait_status(page, status, ("done", "failed"), video_job).startswith("done")
            page.get_by_role("tab", name="Playback").click()
            page.locator("#play-pick input").click()
            page.get_by_role("option", name=re.compile(video_job)).click()
            video = page.locator("#play-inr video")
            video.wait_for(timeout=60_000)
            page.wait_for_function("v => v.readyState >= 2 && v.duration > 0", arg=video.element_handle(), timeout=60_000)
            played = page.evaluate("""async (v) => { v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 500));
                                      return {t: v.currentTime, src: v.currentSrc}; }""", video.element_handle())
            assert played["t"] > 0 and played["src"]
            original = page.locator("#play-original video").element_handle()
            state = page.evaluate("v => ({paused: v.paused, t: v.currentTime})", original)
            assert not state["paused"] or state["t"] > 0, state
            assert re.search(r"PSNR \d+\.\d+ dB", page.locator("#play-inr-stats").inner_text())
            page.screenshot(path=str(ARTIFACTS / "ui_playback_video.png"), full_page=True)

            # a long job: reload the page while it runs, the page comes back to it, cancel it there
            page.get_by_role("tab", name="Fit").click()
            page.locator("#fit-seconds input").first.fill("300")
            job_id = _start(page, "#fit-start")
            _wait_status(page, status, ("running",), job_id, 60_000)
            page.reload(wait_until="domcontentloaded")
            page.locator("#fit-start").wait_for(timeout=60_000)
            page.wait_for_function("([el, id]) => el.value.includes(id) && el.value.startsWith('running')",
                                   arg=[page.locator(status).element_handle(), job_id], timeout=30_000)
            page.get_by_role("tab", name="Jobs").click()
            page.locator("#jobs-list").get_by_text(job_id).wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "ui_jobs.png"), full_page=True)
            page.locator("#jobs-cancel-pick input").click()
            page.get_by_role("option", name=re.compile(job_id)).click()
            page.locator("#jobs-cancel").click()
            page.get_by_role("tab", name="Fit").click()
            assert _wait_status(page, status, ("cancelled",), job_id, 60_000).startswith("cancelled")
            assert _api(url, f"api/jobs/{job_id}")["status"] == "cancelled"
            # the compare flow: a tiny clip, one INR point, the codec curves, the report inline
            page.get_by_role("tab", name="Compare").click()
            page.locator("#cmp-plan").get_by_text("INR point").wait_for(timeout=10_000)
            page.locator("#cmp-upload input[type=file]").set_input_files(str(tiny_clip_file))
            page.locator("#cmp-bpp textarea, #cmp-bpp input").first.fill("0.5")
            page.locator("#cmp-seconds input").first.fill("3")
            cmp_id = _start(page, "#cmp-go")
            cmp_status = "#cmp-status textarea"
            assert _wait_status(page, cmp_status, ("done", "failed", "cancelled"), cmp_id, 300_000).startswith("done")
            page.frame_locator("#cmp-frame").get_by_text("BD-rate").first.wait_for(timeout=30_000)
            page.locator("#cmp-table").get_by_text("h264").first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "ui_compare.png"), full_page=True)
            # a reload without the job in the URL still shows the finished report
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("tab", name="Compare").click()
            assert _wait_status(page, cmp_status, ("done",), cmp_id, 60_000).startswith("done")
            page.frame_locator("#cmp-frame").get_by_text("BD-rate").first.wait_for(timeout=30_000)
            assert not external, f"the page tried to reach the network: {external[:5]}"
        finally:
            page.screenshot(path=str(ARTIFACTS / "ui_last.png"), full_page=True)
            browser.close()
