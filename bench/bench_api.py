"""API responsiveness while uploads are checked and a job runs (issue: GETs p99 < 100 ms).

    python bench/bench_api.py [--uploads 8] [--gets 400]

Starts the real service on loopback (`inr serve`: API + one worker process), submits a fit
job so the worker is busy, then sends `--uploads` concurrent uploads of a real clip (each is
probed and checked off the event loop) while one client times `--gets` sequential GETs of
/api/health and /api/jobs. Prints p50 / p95 / p99 / max and writes bench/results/api.json.
Traffic goes to 127.0.0.1 only and every loop is bounded.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx
from common import ROOT, print_table, write_json  # noqa: I001

CLIP = ROOT / "inr" / "assets" / "bunny_320x180_32f.mp4"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _upload(base: str, params: dict) -> int:
    with httpx.Client(base_url=base, timeout=120) as c, CLIP.open("rb") as f:
        r = c.post("/api/jobs", data={"kind": "encode", "params": json.dumps(params)}, files={"file": (CLIP.name, f, "video/mp4")})
        return r.status_code


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uploads", type=int, default=8)
    ap.add_argument("--gets", type=int, default=400)
    args = ap.parse_args()
    port = _port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="inr-bench-api-") as data:
        proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "serve", "--port", str(port), "--data-dir", data],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            with httpx.Client(base_url=base, timeout=10) as http:
                for _ in range(300):
                    try:
                        if http.get("/api/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                else:
                    raise SystemExit("server did not start")
                busy = _upload(base, {"model": "nerv", "params": "50k", "seconds": 120})  # keeps the worker busy
                idle = [_timed(http, "/api/health") for _ in range(50)]
                statuses: list[int] = []
                threads = [threading.Thread(target=lambda: statuses.append(_upload(base, {"model": "nerv", "params": "20k", "epochs": 1})))
                           for _ in range(args.uploads)]
                for t in threads:
                    t.start()
                loaded = []
                for i in range(args.gets):
                    loaded.append(_timed(http, "/api/health" if i % 2 else "/api/jobs"))
                for t in threads:
                    t.join(120)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    rows = [_summary("idle (worker busy, no uploads)", idle), _summary(f"{args.uploads} concurrent uploads + busy worker", loaded)]
    print_table(rows, ["case", "gets", "p50_ms", "p95_ms", "p99_ms", "max_ms"])
    print(f"first job: HTTP {busy}; uploads: {sorted(statuses)}")
    write_json("api", {"args": vars(args), "results": rows, "upload_status": sorted(statuses)})


def _timed(http: httpx.Client, path: str) -> float:
    t0 = time.perf_counter()
    r = http.get(path)
    r.raise_for_status()
    return (time.perf_counter() - t0) * 1000


def _summary(case: str, ms: list[float]) -> dict:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"case": case, "gets": len(ms), "p50_ms": statistics.median(ms), "p95_ms": q[94], "p99_ms": q[98], "max_ms": max(ms)}


if __name__ == "__main__":
    main()
