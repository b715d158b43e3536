"""Running one job: parameters -> the same library calls the CLI makes, progress -> the store.

Parameters arrive as JSON from the API and are validated here (`validate_params`) before a
job is created, so workers only see work that can start.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from inr.errors import InrError
from inr.models.auto import AUTO
from server.limits import LimitError, Limits
from server.retention import job_dir
from server.store import JobStore


class JobCancelled(Exception):
    """Raised from the progress callback when a cancel was requested."""


FIT_KEYS = {"model", "params", "epochs", "seconds", "steps", "seed", "max_frames", "resize", "crop", "bpp", "bits", "prune", "lr"}
GOP_KEYS = {"gop", "scene_cut", "warm_start"}  # an encode's groups of frames (video.gop_encode.GopOptions)
ENCODE_KEYS = FIT_KEYS | GOP_KEYS
COMPARE_KEYS = {"models", "bpps", "codecs", "presets", "crfs", "epochs", "seconds", "seed", "max_frames", "resize", "crop"}
# A job directory's layout (server.retention.job_dir): what the worker writes and the API and
# the app read back by name.
ENCODED = "output.inr"
ENCODE_REPORT = ENCODED + ".json"  # encode_file writes its report beside the file
DECODED = {"image": "decoded.png", "video": "decoded.mp4"}
COMPARE_RESULTS = "report/results.json"
MAX_SIDE = 16384  # resize/crop: wider than any codec we accept


def _number(out: dict, key: str, lo: float, hi: float, lo_open: bool = True) -> None:
    """A finite JSON number (not a bool) in (lo, hi] (or [lo, hi] with lo_open=False)."""
    v = out.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InrError(f"{key} must be a finite number, got {json.dumps(v)[:40]}")
    if v > hi or v < lo or (lo_open and v == lo):
        raise InrError(f"{key} must be {'>' if lo_open else '>='} {lo:g} and <= {hi:g}, got {v:g}")
    out[key] = float(v)


def _integer(out: dict, key: str, lo: int, hi: int) -> None:
    """A JSON integer (not a bool, not 1e3) in [lo, hi]."""
    v = out.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        raise InrError(f"{key} must be an integer, got {json.dumps(v)[:40]}")
    if not lo <= v <= hi:
        raise InrError(f"{key} must be between {lo} and {hi}, got {v}")


def _flag(out: dict, key: str) -> None:
    """A JSON boolean (not 0/1, not "yes"): a typo must not silently mean false."""
    v = out.get(key)
    if v is not None and not isinstance(v, bool):
        raise InrError(f"{key} must be true or false, got {json.dumps(v)[:40]}")


def _size(out: dict, key: str) -> None:
    from video.media import parse_size

    v = out.get(key)
    if v is None:
        return
    if not isinstance(v, str):
        raise InrError(f"{key} must be a string WIDTHxHEIGHT, e.g. \"320x180\"")
    w, h = parse_size(v, key)  # type: ignore[misc]
    if w > MAX_SIDE or h > MAX_SIDE:
        raise InrError(f"{key} {w}x{h}: sides are limited to {MAX_SIDE}")


def _str_list(out: dict, key: str, allowed: set[str] | None, limit: int) -> None:
    v = out.get(key)
    if not isinstance(v, list) or not v or len(v) > limit or not all(isinstance(x, str) for x in v):
        raise InrError(f"{key} must be a list of 1 to {limit} strings")
    if allowed is not None and not set(v) <= allowed:
        raise InrError(f"{key}: unknown {', '.join(sorted(set(v) - allowed))} (choose from {', '.join(sorted(allowed))})")


def validate_params(kind: str, params: dict, limits: Limits | None = None) -> dict:
    """Check and normalise a job's parameters (types, finiteness, ranges); raises InrError with
    a user-facing message. The budget is completed by `bound_budget` once the input is known."""
    from inr.models import get_spec, parse_param_budget
    from video.codecs import CODECS, PRESETS

    limits = limits or Limits()
    if not isinstance(params, dict):
        raise InrError("params must be a JSON object")
    allowed = {"fit": FIT_KEYS, "encode": ENCODE_KEYS, "decode": set(), "compare": COMPARE_KEYS}[kind]
    unknown = set(params) - allowed
    if unknown:
        raise InrError(f"unknown parameter(s) for {kind}: {', '.join(sorted(map(str, unknown)))[:200]}")
    out = {k: v for k, v in params.items() if v is not None}
    if kind in ("fit", "encode"):
        model = out.setdefault("model", AUTO)
        if not isinstance(model, str):
            raise InrError("model must be a string")
        if model != AUTO:
            get_spec(model)
        if "params" in out:
            budget = out["params"]
            if isinstance(budget, bool) or not isinstance(budget, (str, int, float)) or (isinstance(budget, float) and not math.isfinite(budget)):
                raise InrError("params must be a parameter budget such as \"300k\" or \"0.75M\"")
            out["params"] = str(budget)
            if parse_param_budget(out["params"]) > limits.max_model_params:
                raise LimitError(f"params {out['params']} exceeds this server's limit of {limits.max_model_params / 1e6:g} M parameters", 413)
        _number(out, "bpp", 0.0, 64.0)
        _integer(out, "bits", 2, 16)
        _number(out, "prune", 0.0, 0.99, lo_open=False)
        _number(out, "lr", 0.0, 1.0)
    if kind == "encode":
        _integer(out, "gop", 1, 1_000_000)
        _flag(out, "scene_cut")
        _flag(out, "warm_start")
    if kind == "compare":
        out.setdefault("models", [AUTO])
        _str_list(out, "models", None, limits.max_list)
        for m in out["models"]:
            if m != AUTO:
                get_spec(m)
        bpps = out.setdefault("bpps", [0.1, 0.2])
        if not isinstance(bpps, list) or not bpps or len(bpps) > limits.max_list:
            raise InrError(f"bpps must be a list of 1 to {limits.max_list} positive numbers")
        for i in range(len(bpps)):
            box = {"bpps": bpps[i]}
            _number(box, "bpps", 0.0, 64.0)
            bpps[i] = box["bpps"]
        if "codecs" in out:
            _str_list(out, "codecs", set(CODECS), limits.max_list)
        if "presets" in out:
            _str_list(out, "presets", set(PRESETS), limits.max_list)
        if "crfs" in out:
            crfs = out["crfs"]
            if not isinstance(crfs, list) or not crfs or len(crfs) > limits.max_list:
                raise InrError(f"crfs must be a list of 1 to {limits.max_list} integers")
            for c in crfs:
                _integer({"crfs": c}, "crfs", 0, 51)
    _integer(out, "epochs", 1, limits.max_epochs)
    _integer(out, "steps", 1, limits.max_steps)
    _integer(out, "max_frames", 1, 1_000_000)
    _integer(out, "seed", 0, 2**31 - 1)
    _number(out, "seconds", 0.0, limits.max_seconds)
    for key in ("resize", "crop"):
        _size(out, key)
    return out


def bound_budget(kind: str, params: dict, media: str, limits: Limits) -> None:
    """Once the upload's kind is known: the default budget every front end shares when none is
    given (inr.options), and always this server's wall-clock cap, so no web request starts an
    unbounded fit."""
    from inr.options import default_budget

    if kind not in ("fit", "encode", "compare"):
        return
    budget = default_budget(params.get("steps"), params.get("epochs"), params.get("seconds"), media)
    params.update({k: v for k, v in budget.items() if v is not None})
    params.setdefault("seconds", limits.max_seconds)  # epochs/steps budgets still stop at the cap


def runtime_limit(kind: str, params: dict, limits: Limits) -> float:
    """Seconds a running job may take before the supervisor stops it: generous multiples of
    its fit budget (rate control refits, export, decode and baselines come on top)."""
    if kind == "decode":
        return limits.decode_timeout_s
    seconds = float(params.get("seconds", limits.max_seconds))
    if kind == "compare":
        seconds *= len(params.get("models", [1])) * len(params.get("bpps", [1]))
    return min(limits.max_runtime_s, 6 * seconds + 1200)


def read_options(params: dict):
    from video.media import ReadOptions, parse_size

    return ReadOptions(max_frames=params.get("max_frames"), resize=parse_size(params.get("resize"), "resize"), crop=parse_size(params.get("crop"), "crop"))


def gop_options(params: dict):
    """How an encode job splits a long video into groups of frames: `gop` frames each (default:
    from the resolution and memory, as the CLI), `scene_cut`, `warm_start` (default on); the
    GOPs of one job run one after another in its worker process."""
    from video.gop_encode import GopOptions

    return GopOptions(gop=params.get("gop"), warm_start=params.get("warm_start", True), scene_cut=params.get("scene_cut", False), workers=1)


def fit_options(params: dict, media: str):
    """The fitting part of a fit/encode job's (validated) parameters, through the shared builder."""
    from inr.models import parse_param_budget
    from inr.options import fit_options as build

    budget = parse_param_budget(params["params"]) if "params" in params else None
    return build(params["model"], media, steps=params.get("steps"), epochs=params.get("epochs"), seconds=params.get("seconds"),
                 params=budget, seed=params.get("seed", 0), lr=params.get("lr"))


def run_job(job: dict, store: JobStore, data_dir: Path, device_name: str = "auto") -> list[str]:
    """Run `job`; return its artifact names (files under data_dir/jobs/<id>/)."""
    from inr.device import select_device
    from video.media import is_image_path, media_kind

    job_id, kind, params = job["id"], job["kind"], job["params"]
    out = job_dir(data_dir, job_id)
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
    gop_now = {"label": ""}  # "GOP i/n " while a long video is encoded in groups of frames

    def on_phase(name: str) -> None:
        n = phase_count[name] = phase_count.get(name, 0) + 1
        phase_now["name"] = gop_now["label"] + (name if n == 1 else f"{name} {n}")
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

        opts = fit_options(params, media_kind(src))
        metrics = fit_media(src, opts, read_options(params), out / "fit", device, callback=progress)
        return [str(Path(metrics["output"]).relative_to(out)), "fit/metrics.json"]
    if kind == "encode":
        from inr.export.compress import ExportOptions
        from video.gop_encode import decode_video as decode_file, encode_video
        from video.playback import image_companions, video_companions

        def on_gop(done: int, total: int) -> None:
            if total > 1 and done < total:
                gop_now["label"] = f"GOP {done + 1}/{total} "  # the encoder's next phase() shows it
                phase_count.clear()

        opts = fit_options(params, media_kind(src))
        exp = ExportOptions(bits=params.get("bits", 8), prune=params.get("prune", 0.0))
        report = encode_video(src, out / ENCODED, opts, exp, read_options(params), device, bpp=params.get("bpp"),
                              gops=gop_options(params), callback=progress, phase=on_phase, progress=on_gop)
        gop_now["label"] = ""
        is_image = report["frames"] == 1 and is_image_path(src)
        decoded = DECODED["image" if is_image else "video"]
        on_phase("playback copies")
        decode_file(out / ENCODED, out / decoded, device)
        artifacts = [ENCODED, ENCODE_REPORT, decoded]
        companions = image_companions if is_image else video_companions  # beside the .inr, at about its size
        artifacts += companions(src, read_options(params), report["bytes"], out)
        return artifacts
    if kind == "decode":
        from video.gop_encode import decode_video as decode_file, inspect as inspect_file

        info = inspect_file(src)
        name = DECODED["image" if info["header"]["signal"]["kind"] == "image" else "video"]
        decode_file(src, out / name, device)
        return [name]
    if kind == "compare":
        from video.compare import CompareOptions, run_compare

        opts = CompareOptions(
            models=params["models"], bpps=params["bpps"], codecs=params.get("codecs"),
            presets=params.get("presets"), crfs=params.get("crfs"),
            epochs=params.get("epochs"), seconds=params.get("seconds"), seed=params.get("seed", 0), read=read_options(params),
        )
        # The report names its input after the file it reads: show the user's name, not the upload's.
        named = out / "source" / (Path(job.get("input_name") or src.name).name or src.name)
        named.parent.mkdir(exist_ok=True)
        named.unlink(missing_ok=True)
        named.symlink_to(src.resolve())
        run_compare(named, opts, out / "report", device, log=lambda m: None, callback=progress)
        return ["report/report.html", COMPARE_RESULTS, "report/results.csv"]
    raise InrError(f"unknown job kind {kind}")
