"""The Gradio app, driven through gradio_client against a real `inr ui` process."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("ui-data")
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "ui", "--port", str(port), "--data-dir", str(data), "--max-upload-mb", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "api/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode())
            time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_fit_flow_through_gradio_client(ui_server, tiny_clip_file):
    from gradio_client import Client, handle_file

    client = Client(ui_server, verbose=False)
    result = client.predict(
        handle_file(str(tiny_clip_file)), False, "nerv", "parameters", "30k", 6,
        api_name="/start_fit",
    )
    plot, preview, status = result  # gr.State outputs are not sent to API clients
    assert status.startswith("done"), status
    assert re.search(r"PSNR \d+\.\d+ dB", status)
    job_id = re.search(r"job (\w+)", status).group(1)
    with urllib.request.urlopen(f"{ui_server}api/jobs/{job_id}") as r:
        assert b'"done"' in r.read()


def test_bad_upload_shows_an_error(ui_server, tmp_path):
    from gradio_client import Client, handle_file

    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    client = Client(ui_server, verbose=False)
    with pytest.raises(Exception, match="not a readable video"):
        client.predict(handle_file(str(fake)), False, "nerv", "parameters", "30k", 5, api_name="/start_fit")
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2 << 20))
    with pytest.raises(Exception, match="(?i)exceed|too large|size"):
        client.predict(handle_file(str(big)), False, "nerv", "parameters", "30k", 5, api_name="/start_fit")
    corrupt = tmp_path / "corrupt.inr"
    corrupt.write_bytes(b"INRC" + bytes(64))
    with pytest.raises(Exception, match="(?i)inr|header|corrupt"):
        client.predict(handle_file(str(corrupt)), api_name="/decode_upload")
    with urllib.request.urlopen(f"{ui_server}api/health") as r:  # still serving
        assert r.status == 200


def test_browser_end_to_end(ui_server, tiny_clip_file):
    """Real Chromium (Debian's) through Playwright: upload, fit, wait, play back."""
    import shutil
    from pathlib import Path

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium and playwright (see .ci/run)")
        pytest.skip("needs Debian's chromium and the playwright package")
    artifacts = Path(__file__).resolve().parents[1] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            external: list[str] = []
            page.on("request", lambda r: external.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
            page.goto(ui_server, wait_until="domcontentloaded")
            page.locator("#fit-start").wait_for(timeout=60_000)
            page.wait_for_function("() => window.inrPlaybackSync === true", timeout=30_000)  # player sync installed
            page.locator("#fit-upload input[type=file]").set_input_files(str(tiny_clip_file))
            page.locator("#fit-budget textarea, #fit-budget input").first.fill("30k")
            page.locator("#fit-seconds input").first.fill("6")
            page.locator("#fit-start").click()
            status = page.locator("#fit-status textarea")
            page.wait_for_function(
                "el => el.value.startsWith('done') || el.value.startsWith('failed')", arg=status.element_handle(), timeout=180_000
            )
            assert status.input_value().startswith("done"), status.input_value()
            page.get_by_role("tab", name="Playback").click()
            page.get_by_role("button", name="Refresh list").click()
            page.locator("#play-pick input").click()
            page.get_by_role("option").first.click()
            video = page.locator("#play-inr video")
            video.wait_for(timeout=60_000)
            page.wait_for_function("v => v.readyState >= 2 && v.duration > 0", arg=video.element_handle(), timeout=60_000)
            played = page.evaluate(
                """async (v) => { v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 500));
                                  return {t: v.currentTime, src: v.currentSrc}; }""",
                video.element_handle(),
            )
            assert played["t"] > 0 and played["src"]
            # the players are synchronised: the original started with the INR
            original = page.locator("#play-original video").element_handle()
            state = page.evaluate("v => ({paused: v.paused, t: v.currentTime, ready: v.readyState, n: document.querySelectorAll('#play-row video').length})", original)
            assert not state["paused"] or state["t"] > 0, state
            size = page.evaluate("async (u) => (await (await fetch(u)).arrayBuffer()).byteLength", played["src"])
            assert size > 0
            stats = page.locator("#play-inr-stats").inner_text()
            assert re.search(r"PSNR \d+\.\d+ dB", stats), stats
            assert not external, f"the page tried to reach the network: {external[:5]}"
        finally:
            page.screenshot(path=str(artifacts / "ui_e2e.png"), full_page=True)
            browser.close()
