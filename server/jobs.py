"""Running one job: parameters -> the same library calls the CLI makes, progress -> the store.

Parameters arrive as JSON from the API and are validated here (`validate_params`) before a
job is created, so workers only see work that can start.
"""
from __future__ import annotations

import time
from pathlib import Path

from inr.errors import InrError
from server.store import JobStore


class JobCancelled(Exception):
    """Raised from the progress callback when a cancel was requested."""


FIT_KEYS = {"model", "params", "epochs", "seconds", "steps", "seed", "max_frames", "resize", "crop", "bpp", "bits", "prune", "lr"}
COMPARE_KEYS = {"models", "bpps", "codecs", "presets", "crfs", "epochs", "seconds", "seed", "max_frames", "resize", "crop"}


def validate_params(kind: str, params: dict) -> dict:
    """Check and normalise a job's parameters; raises InrError with a user-facing message."""
    from inr.models import get_spec, parse_param_budget
    from video.media import parse_size

    if not isinstance(params, dict):
        raise InrError("params must be a JSON object")
    allowed = {"fit": FIT_KEYS, "encode": FIT_KEYS, "decode": set(), "compare": COMPARE_KEYS}[kind]
    unknown = set(params) - allowed
    if unknown:
        raise InrError(f"unknown parameter(s) for {kind}: {', '.join(sorted(unknown))}")
    out = dict(params)
    if kind in ("fit", "encode"):
        get_spec(str(out.setdefault("model", "hnerv")))
        if "params" in out:
            parse_param_budget(str(out["params"]))
    if kind == "compare":
        for m in out.setdefault("models", ["hnerv"]):
            get_spec(str(m))
        bpps = out.setdefault("bpps", [0.1, 0.2])
        if not bpps or any(not isinstance(b, (int, float)) or b <= 0 for b in bpps):
            raise InrError("bpps must be positive numbers")
    for key in ("epochs", "steps", "max_frames", "bits", "seed"):
        if key in out and (not isinstance(out[key], int) or isinstance(out[key], bool) or (out[key] <= 0 and key != "seed")):
            raise InrError(f"{key} must be a positive integer")
    for key in ("seconds", "bpp", "lr"):
        if key in out and (not isinstance(out[key], (int, float)) or out[key] <= 0):
            raise InrError(f"{key} must be a positive number")
    if "prune" in out and not (isinstance(out["prune"], (int, float)) and 0 <= out["prune"] < 1):
        raise InrError("prune must be in [0, 1)")
    for key in ("resize", "crop"):
        if key in out:
            parse_size(out[key], key)
    if kind in ("fit", "encode", "compare") and not any(k in out for k in ("epochs", "seconds", "steps")):
        out["seconds"] = 60.0  # a bounded default: a web request must not start an unbounded fit
    return out


def read_options(params: dict):
    from video.media import ReadOptions, parse_size

    return ReadOptions(max_frames=params.get("max_frames"), resize=parse_size(params.get("resize"), "resize"), crop=parse_size(params.get("crop"), "crop"))


def fit_options(params: dict):
    """The fitting part of a fit/encode job's (validated) parameters."""
    from inr.fit import FitConfig
    from inr.models import parse_param_budget
    from inr.pipeline import FitOptions

    fit = FitConfig(steps=params.get("steps"), epochs=params.get("epochs"), seconds=params.get("seconds"), seed=params.get("seed", 0), lr=params.get("lr"))
    budget = parse_param_budget(params["params"]) if "params" in params else None
    return FitOptions(model=params["model"], params=budget, fit=fit)


def run_job(job: dict, store: JobStore, data_dir: Path, device_name: str = "auto") -> list[str]:
    """Run `job`; return its artifact names (files under data_dir/jobs/<id>/)."""
    from inr.device import select_device

    job_id, kind, params = job["id"], job["kind"], job["params"]
    out = data_dir / "jobs" / job_id
    out.mkdir(parents=True, exist_ok=True)
    src = Path(job["input"])
    device = select_device(device_name)
    last = {"update": 0.0, "preview": 0.0}
    # history rows: [step, psnr, seconds since the job started, phase]. Steps restart at 1 in
    # each phase (prune, QAT, a rate-control retry); seconds and the phase label do not, so a
    # plot over seconds tells one continuous story.
    history: list[list] = []
    t_start = time.monotonic()
    phase_now = {"name": "fit"}
    phase_count: dict[str, int] = {}

    def on_phase(name: str) -> None:
        n = phase_count[name] = phase_count.get(name, 0) + 1
        phase_now["name"] = name if n == 1 else f"{name} {n}"
        job_now = store.get(job_id) or {}
        store.set_progress(job_id, {**job_now.get("progress", {}), "phase": phase_now["name"]})

    def progress(state) -> None:
        """Throttled: progress every 0.5 s, a preview frame every 3 s; stops on cancel."""
        now = time.monotonic()
        if now - last["update"] < 0.5:
            return
        last["update"] = now
        if store.cancel_requested(job_id):
            raise JobCancelled()
        history.append([state.step, round(state.psnr, 3), round(now - t_start, 2), phase_now["name"]])
        if len(history) > 400:  # thin the older half: the whole story stays, at a coarser grain
            history[:200] = history[:200:2]
        info = {"step": state.step, "epoch": round(state.epoch, 2), "psnr": round(state.psnr, 3), "history": history,
                "progress": round(state.progress, 4), "eta": None if state.eta is None else round(state.eta, 1),
                "phase": phase_now["name"], "elapsed": round(now - t_start, 1)}
        preview = getattr(state, "preview", None)
        if preview is not None and now - last["preview"] > 3.0:
            last["preview"] = now
            from video.media import save_image

            save_image(out / "preview.png", preview())
            info["preview"] = "preview.png"
        elif (out / "preview.png").is_file():
            info["preview"] = "preview.png"
        store.set_progress(job_id, info)

    if kind == "fit":
        from video.fitting import fit_media

        opts = fit_options(params)
        metrics = fit_media(src, opts, read_options(params), out / "fit", device, callback=progress)
        return [str(Path(metrics["output"]).relative_to(out)), "fit/metrics.json"]
    if kind == "encode":
        from inr.export.compress import ExportOptions
        from video.encode import decode_file, encode_file

        opts = fit_options(params)
        exp = ExportOptions(bits=params.get("bits", 8), prune=params.get("prune", 0.0))
        report = encode_file(src, out / "output.inr", opts, exp, read_options(params), device, bpp=params.get("bpp"),
                             callback=progress, phase=on_phase)
        is_image = report["frames"] == 1 and src.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
        decoded = "decoded.png" if is_image else "decoded.mp4"
        on_phase("playback copies")
        decode_file(out / "output.inr", out / decoded, device)
        artifacts = ["output.inr", "output.inr.json", decoded]
        if is_image:
            artifacts += image_playback_companions(src, params, report, out)
        else:
            artifacts += playback_companions(src, params, report, out)
        return artifacts
    if kind == "decode":
        from video.encode import decode_file, inspect_file

        info = inspect_file(src)
        name = "decoded.png" if info["header"]["signal"]["kind"] == "image" else "decoded.mp4"
        decode_file(src, out / name, device)
        return [name]
    if kind == "compare":
        from video.compare import CompareOptions, run_compare

        opts = CompareOptions(
            models=params["models"], bpps=params["bpps"], codecs=params.get("codecs", ["h264", "h265"]),
            presets=params.get("presets", ["medium"]), crfs=params.get("crfs", [23, 28, 33, 38, 43]),
            epochs=params.get("epochs"), seconds=params.get("seconds"), seed=params.get("seed", 0), read=read_options(params),
        )
        # The report names its input after the file it reads: show the user's name, not the upload's.
        named = out / "source" / (Path(job.get("input_name") or src.name).name or src.name)
        named.parent.mkdir(exist_ok=True)
        named.unlink(missing_ok=True)
        named.symlink_to(src.resolve())
        run_compare(named, opts, out / "report", device, log=lambda m: None, callback=progress)
        return ["report/report.html", "report/results.json", "report/results.csv"]
    raise InrError(f"unknown job kind {kind}")


def playback_companions(src: Path, params: dict, report: dict, out: Path) -> list[str]:
    """For side-by-side playback: the original (browser-playable, near-lossless) and H.264
    at about the .inr's size (CRF searched to the closest byte count)."""
    from video.codecs import encode_baseline
    from video.fitting import write_json
    from video.media import read_video, write_video
    from video.quality import clip_quality

    frames, info = read_video(src, read_options(params))
    arr = frames.numpy()
    write_video(out / "original.mp4", frames, fps=info.fps, crf=10)
    target = report["bytes"]
    lo, hi, best = 0, 51, None
    while lo <= hi:  # bytes fall as CRF rises: binary search for the closest size
        crf = (lo + hi) // 2
        res = encode_baseline(arr, "h264", "medium", crf, info.fps or 25.0)
        if best is None or abs(res.bytes - target) < abs(best.bytes - target):
            best = res
        if res.bytes > target:
            lo = crf + 1
        else:
            hi = crf - 1
    q = clip_quality(best.decoded, arr, best.decoded_y)
    write_video(out / "h264.mp4", best.decoded, fps=info.fps, crf=10)
    pixels = arr.shape[0] * arr.shape[1] * arr.shape[2]
    write_json(out / "h264.json", {"crf": best.crf, "bytes": best.bytes, "bpp": best.bytes * 8 / pixels, "psnr": q["psnr"], "msssim": q["msssim"],
                                   "note": "h264.mp4 shows the decoded H.264 frames re-wrapped at CRF 10 for the browser; bytes are of the original stream"})
    return ["original.mp4", "h264.mp4", "h264.json"]


# TODO(lead, issue 13): route this to video/image_codecs.py (the JPEG/WebP/AVIF module another
# helper is writing) on merge, so the Pillow code lives in one place only.
def image_playback_companions(src: Path, params: dict, report: dict, out: Path) -> list[str]:
    """For side-by-side viewing of an image job: the original as PNG and a JPEG of about the
    .inr's size (quality searched to the closest byte count), with its bytes, bpp and PSNR."""
    from video.fitting import load_signal, write_json
    from video.image_codecs import match_size
    from video.media import atomic_path, save_image, to_uint8
    from video.quality import clip_quality

    signal, _ = load_signal(src, read_options(params))
    orig = to_uint8(signal.data)
    save_image(out / "original.png", signal.data)
    match = match_size(orig, "jpeg", report["bytes"])
    with atomic_path(out / "jpeg.jpg") as tmp:
        tmp.write_bytes(match.data)
    qual = clip_quality(match.decoded[None], orig[None])
    write_json(out / "jpeg.json", {"codec": "jpeg", "quality": match.quality, "bytes": match.bytes, "bpp": match.bpp(),
                                   "fits": match.fits, "psnr": qual["psnr"], "msssim": qual["msssim"]})
    return ["original.png", "jpeg.jpg", "jpeg.json"]
