"""`inr batch` through the command line, in a subprocess so that Ctrl-C can be sent: a
corrupt file fails alone, an interrupted run leaves no partial output, and a rerun skips
what was finished."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from video.media import write_video


def _batch_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "ui.cli", "batch", str(src), "-o", str(out), "--model", "nerv", "--params", "30k",
            "--epochs", "3", "--max-frames", "4", "--recursive"]


def test_batch_with_corrupt_file_interrupted_and_resumed(tmp_path, tiny_clip):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_video(src / "a.mkv", tiny_clip[:4], lossless=True)
    write_video(src / "sub" / "b.mkv", tiny_clip[4:8], lossless=True)
    write_video(src / "sub" / "c.mkv", tiny_clip[2:6], lossless=True)
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(_batch_cmd(src, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    manifest = out / "manifest.csv"
    deadline = time.time() + 240
    while time.time() < deadline:  # interrupt once the first file is recorded
        if manifest.is_file() and len(manifest.read_text().strip().splitlines()) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    assert not list(out.rglob("*.part*")), "a partial output was left behind"
    done_first = {r["input"]: r for r in csv.DictReader(manifest.open())}
    mtimes = {p: p.stat().st_mtime for p in out.rglob("*.inr")}
    assert done_first

    rc = subprocess.run(_batch_cmd(src, out), capture_output=True, text=True, env=env, timeout=600).returncode
    assert rc == 1  # one file failed
    rows = {r["input"]: r for r in csv.DictReader(manifest.open())}
    assert len(rows) == 4
    assert rows[str(src / "broken.mp4")]["status"] == "failed" and rows[str(src / "broken.mp4")]["error"]
    for name in ("a.mkv", "sub/b.mkv", "sub/c.mkv"):
        row = rows[str(src / name)]
        assert row["status"] == "done" and float(row["bytes"]) > 0 and float(row["psnr"]) > 0
        assert (out / name).with_suffix(".inr").is_file()
    for p, m in mtimes.items():  # finished files were skipped, not redone
        assert p.stat().st_mtime == m
    assert not list(out.rglob("*.part*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == 3 and summary["failed"] == 1
