"""Videos in groups of frames (issue 11): a clip split into GOPs round-trips through one
seekable file, a frame range decodes only its GOPs and equals a full decode's frames, a killed
encode resumes to the same structure, input that cannot fit is refused in one line, and
memory follows the GOP, not the clip."""
from __future__ import annotations

import dataclasses
import subprocess
import tracemalloc
from pathlib import Path

import pytest
import torch

from inr.errors import InrError
from inr.export import gop as gopfile
from inr.export.compress import ExportOptions
from inr.fit import FitConfig
from inr.pipeline import FitOptions
from video.ffmpeg_bin import ffmpeg_exe
from video.media import ReadOptions

CPU = torch.device("cpu")


def test_old_single_gop_files_still_decode_through_the_gop_path(hnerv_file):
    from inr.export.codec import decode_model

    _, _, model, header = decode_model(hnerv_file)
    frames = torch.cat(list(gopfile.decode_range(hnerv_file, 0, 2, CPU)))
    assert torch.equal(frames, model.render(header["signal"]["shape"], CPU))
    assert gopfile.open_index(hnerv_file).version == 1


class Killed(Exception):
    pass


def test_killed_encode_resumes_redoing_only_unfinished_gops(clip12, tmp_path, monkeypatch):
    from video import gop_encode
    from video.gop_encode import GopOptions, encode_video

    opts = FitOptions(model="siren", params=6_000, fit=FitConfig(steps=3))
    args = (clip12, tmp_path / "r.inr", opts, ExportOptions(), ReadOptions(), CPU)

    def kill_after_first(done: int, total: int) -> None:
        if done == 1:
            raise Killed

    with pytest.raises(Killed):
        encode_video(*args, gops=GopOptions(gop=4), progress=kill_after_first)
    out = tmp_path / "r.inr"
    assert not out.exists()
    assert [p.name for p in sorted(gop_encode.work_dir(out).glob("gop_*.inr"))] == ["gop_00000.inr"]
    fitted = []
    real = gop_encode._encode_one
    monkeypatch.setattr(gop_encode, "_encode_one", lambda chunk, *a: fitted.append(len(chunk)) or real(chunk, *a))
    with pytest.raises(InrError, match="other settings"):  # a resume must match the interrupted encode
        encode_video(*args[:2], dataclasses.replace(opts, params=9_000), *args[3:], gops=GopOptions(gop=4, resume=True))
    encode_video(*args, gops=GopOptions(gop=4, resume=True))
    assert fitted == [4, 4]  # GOP 0 was kept
    encode_video(clip12, tmp_path / "full.inr", *args[2:], gops=GopOptions(gop=4))
    resumed, full = gopfile.open_index(out), gopfile.open_index(tmp_path / "full.inr")
    assert resumed.header == {**full.header, "signal": {**full.header["signal"]}}
    assert [(g.start, g.frames) for g in resumed.gops] == [(g.start, g.frames) for g in full.gops]
    assert _structure(out) == _structure(tmp_path / "full.inr")  # every GOP: same model, same tensors
    assert torch.cat(list(gopfile.decode_range(out, 0, 12, CPU))).shape == (12, 32, 48, 3)


def test_default_gops_follow_the_memory_budget():
    from video.gop_plan import GiB, peak_bytes, plan_gops

    small = plan_gops(600, 1080, 1920, budget=3 * GiB)
    assert sum(small.lengths) == 600 and len(small.lengths) > 1 and small.peak_bytes <= 3 * GiB
    assert max(small.lengths) - min(small.lengths) <= 1
    assert plan_gops(32, 180, 320, budget=8 * GiB).lengths == [32]  # a short clip stays one GOP
    with pytest.raises(InrError, match="shorter --gop"):
        plan_gops(600, 1080, 1920, gop=600, budget=3 * GiB)
    assert peak_bytes(10, 100, 100, 0) < peak_bytes(20, 100, 100, 0)


def test_the_time_budget_holds_for_the_whole_encode_of_sequential_gops():
    """Each GOP spends 5 s besides its fit (reading, decoding, scoring): the later GOPs' fits
    give that back, so four GOPs of a 100 s budget end at 100 s, not 120 s."""
    from video.gop_encode import TimeShare

    now = [0.0]
    share = TimeShare(100.0, 40, 40, clock=lambda: now[0])
    given = []
    for _ in range(4):
        given.append(share.next(10))
        now[0] += given[-1] + 5.0
        share.done(10)
    assert given[0] == pytest.approx(25.0)  # nothing measured yet: its fixed share
    assert given[1] == pytest.approx((70.0 - 3 * 5.0) / 3)  # 70 s left, 5 s for each GOP to come
    assert now[0] == pytest.approx(100.0)
    assert TimeShare(None, 40, 40).next(10) is None
    # a budget the overheads alone exceed: each fit still gets a quarter of its fixed share
    now[0] = 0.0
    tight = TimeShare(20.0, 40, 40, clock=lambda: now[0])
    tight.next(10)
    now[0] += 30.0
    tight.done(10)
    assert tight.next(10) == pytest.approx(0.25 * 5.0)
    # resumed: the finished half of the clip spent its half of the budget before
    assert TimeShare(100.0, 20, 40, clock=lambda: 0.0).next(10) == pytest.approx(25.0)
    # the first GOP keeps back what the GOPs to come are expected to spend besides their
    # fits (before any is measured): two GOPs then get equal fits, not all and the floor
    now[0] = 0.0
    prior = TimeShare(120.0, 24, 24, clock=lambda: now[0], overhead_per_frame=1.5)
    first = prior.next(12)
    assert first == pytest.approx((120.0 - 1.5 * 24) / 2)
    now[0] += first + 1.5 * 12
    prior.done(12)
    assert prior.next(12) == pytest.approx(first)


def _peak_python_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_chunked_reading_memory_does_not_grow_with_the_clip(tmp_path, synthetic_clip):
    from video.stream import read_chunks

    short, long = synthetic_clip(tmp_path / "s.mkv", 16, "64x48"), synthetic_clip(tmp_path / "l.mkv", 96, "64x48")

    def consume(path: Path, frames: int):
        got = sum(len(c) for c in read_chunks(path, ReadOptions(), [4] * (frames // 4)))
        assert got == frames

    a, b = _peak_python_bytes(lambda: consume(short, 16)), _peak_python_bytes(lambda: consume(long, 96))
    assert b < 1.5 * a + (256 << 10), (a, b)  # 6x the frames, not 6x the memory


def _ntsc_clip(path: Path, frames: int = 24) -> Path:
    """A 30000/1001 clip with B-frames and a keyframe every 8 frames; noise makes every frame
    differ from its neighbours, so a read that is one frame off cannot pass."""
    encode = ["-c:v", "libx264", "-g", "8", "-bf", "2", "-pix_fmt", "yuv420p"]
    if path.suffix == ".y4m":
        encode = ["-pix_fmt", "yuv420p"]
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=48x32:rate=30000/1001,noise=alls=40:allf=t",
         "-frames:v", str(frames), *encode, "-y", str(path)],
        check=True,
    )
    return path


@pytest.mark.parametrize("suffix, seeks", [(".mp4", True), (".mkv", True), (".y4m", True), (".avi", False), (".ts", False)])
def test_a_read_from_frame_n_returns_the_full_reads_frames(tmp_path, suffix, seeks):
    """A GOP task reads only its own range: input seeking where the container lands on the
    exact frame (mp4, mkv, y4m at 30000/1001 here), decoding from the start where it does not
    (MPEG-TS, AVI), and in both cases the frames are those of a full read."""
    from fractions import Fraction

    from video.media import decode_graph, probe, read_media
    from video.stream import read_chunks

    path = _ntsc_clip(tmp_path / f"ntsc{suffix}")
    info = probe(path)
    assert info.rate == (Fraction(30000, 1001) if seeks else None)
    full, _ = read_media(path)
    assert len(full) == 24 and all(not torch.equal(full[i], full[i + 1]) for i in range(23))
    for start in range(1, 24):
        read = ReadOptions(start=start)
        assert ("-ss" in decode_graph(path, read, 5, info).compile()) == seeks
        got = torch.cat(list(read_chunks(path, read, [3, 2], info)))
        assert torch.equal(got, full[start : start + 5]), start
    resized = ReadOptions(start=13, resize=(24, 16), crop=(16, 16))
    assert torch.equal(read_media(path, resized)[0], read_media(path, dataclasses.replace(resized, start=0))[0][13:])


def test_a_frame_folder_read_from_frame_n_opens_only_its_frames(tmp_path, clip12):
    from video.media import read_media, write_video
    from video.stream import read_chunks

    full, _ = read_media(clip12)
    folder = write_video(tmp_path / "frames", full)
    for start in (1, 5, 11):
        got = torch.cat(list(read_chunks(folder, ReadOptions(start=start), [4, 4])))
        assert torch.equal(got, full[start : start + 8])


def test_streaming_decode_memory_does_not_grow_with_the_clip(hnerv_file, tmp_path):
    from video.gop_encode import decode_video

    def clip(n: int) -> Path:
        path = tmp_path / f"g{n}.inr"
        path.write_bytes(gopfile.pack({"kind": "video", "shape": [2 * n, 32, 32, 3], "fps": 25.0}, "hnerv", [(2, hnerv_file)] * n))
        return path

    two, twelve = clip(2), clip(12)
    a = _peak_python_bytes(lambda: decode_video(two, tmp_path / "a.mkv", CPU, lossless=True))
    b = _peak_python_bytes(lambda: decode_video(twelve, tmp_path / "b.mkv", CPU, lossless=True))
    assert b < 1.5 * a + (256 << 10), (a, b)


def _structure(path: Path) -> list:
    index = gopfile.open_index(path)
    with path.open("rb") as f:
        heads = [gopfile.bitstream.read(gopfile.read_payload(f, g)).header for g in index.gops]
    return [(g.start, g.frames) for g in index.gops] + [(h["model"], [t["shape"] for t in h["tensors"]]) for h in heads]


@pytest.mark.parametrize("mode", ["pool", pytest.param("ray", marks=pytest.mark.ray)])
def test_independent_gops_run_in_parallel_to_the_same_structure(clip12, tmp_path, mode):
    from video.gop_encode import GopOptions, encode_video

    if mode == "ray":
        pytest.importorskip("ray")
    opts = FitOptions(model="siren", params=6_000, fit=FitConfig(steps=2))
    args = (opts, ExportOptions(), ReadOptions(), CPU)
    encode_video(clip12, tmp_path / "seq.inr", *args, gops=GopOptions(gop=4, warm_start=False, workers=1))
    parallel = GopOptions(gop=4, warm_start=False, workers=2 if mode == "pool" else None, ray="local" if mode == "ray" else None)
    report = encode_video(clip12, tmp_path / "par.inr", *args, gops=parallel)
    assert _structure(tmp_path / "par.inr") == _structure(tmp_path / "seq.inr")
    assert len(report["per_frame_psnr"]) == 12
    assert torch.cat(list(gopfile.decode_range(tmp_path / "par.inr", 0, 12, CPU))).shape == (12, 32, 48, 3)


def test_parallel_gops_need_warm_start_off(clip12, tmp_path):
    from video.gop_encode import GopOptions, encode_video

    opts = FitOptions(model="siren", params=6_000, fit=FitConfig(steps=1))
    with pytest.raises(InrError, match="no-warm-start"):
        encode_video(clip12, tmp_path / "x.inr", opts, ExportOptions(), ReadOptions(), CPU, gops=GopOptions(gop=4, workers=2))


@pytest.mark.parametrize("model", ["nerv", "nervpp", "hnerv", "ffn"])
def test_every_video_family_encodes_in_gops(clip12, tmp_path, model):
    from video.gop_encode import GopOptions, encode_video

    opts = FitOptions(model=model, params=120_000, fit=FitConfig(steps=1))
    out = tmp_path / f"{model}.inr"
    report = encode_video(clip12, out, opts, ExportOptions(), ReadOptions(max_frames=8), CPU, gops=GopOptions(gop=4))
    assert report["model"] == model and len(report["gops"]) == 2
    assert torch.cat(list(gopfile.decode_range(out, 3, 5, CPU))).shape == (2, 32, 48, 3)


@pytest.mark.parametrize("model", ["grid", "hnerv", "siren"])
def test_warm_start_copies_the_neighbours_stored_weights(tiny_clip, model):
    from inr.models import get_spec
    from inr.pipeline import build_model, copy_matching
    from inr.signals import video_signal

    first, second = video_signal(tiny_clip[:4]), video_signal(tiny_clip[4:8])
    spec = get_spec(model)
    _, fitted = build_model(spec, first, 20_000, None, seed=1)
    weights = fitted.stored_weights()
    _, warm = build_model(spec, second, 20_000, None, seed=2)
    assert copy_matching(warm, weights) == len(weights)
    _, cold = build_model(spec, second, 20_000, None, seed=2)
    mine = warm.stored_weights()
    assert all(torch.equal(mine[n], w) for n, w in weights.items())
    assert any(not torch.equal(cold.stored_weights()[n], w) for n, w in weights.items())


def test_a_scene_cut_starts_a_new_gop(tmp_path):
    from video.gop_plan import plan_gops, scene_cuts
    from video.stream import read_chunks

    path = tmp_path / "cut.mkv"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=48x32:rate=25:d=0.44", "-f", "lavfi", "-i",
         "color=c=navy:size=48x32:rate=25:d=0.4", "-filter_complex", "[0:v][1:v]concat=n=2:v=1", "-c:v", "libx264rgb", "-qp", "0",
         "-y", str(path)],
        check=True,
    )
    cuts = scene_cuts(read_chunks(path, ReadOptions(), [5] * 10))
    assert cuts == [11]
    assert plan_gops(21, 32, 48, gop=8, cuts=cuts).lengths == [8, 3, 8, 2]
    assert plan_gops(21, 32, 48, cuts=cuts, budget=8 << 30).lengths == [11, 10]


def test_server_encode_job_takes_the_gop_path_and_shows_gop_progress(clip12, tmp_path, monkeypatch):
    from server.jobs import run_job, validate_params
    from server.store import JobStore
    from video import gop_plan

    monkeypatch.setattr(gop_plan, "MAX_DEFAULT_GOP", 4)  # 12 frames -> 3 GOPs without a huge clip
    store = JobStore(tmp_path / "jobs.db")
    phases: list[str] = []
    real = store.set_progress
    monkeypatch.setattr(store, "set_progress", lambda job_id, info: phases.append(info.get("phase", "")) or real(job_id, info))
    params = validate_params("encode", {"model": "siren", "params": "6k", "steps": 2})
    job = store.create("encode", params, str(clip12), "c12.mkv")
    artifacts = run_job(job, store, tmp_path, "cpu")
    out = tmp_path / "jobs" / job["id"]
    assert "output.inr" in artifacts and gopfile.open_index(out / "output.inr").version == 2
    assert {"GOP 1/3 fit", "GOP 3/3 fit"} <= set(phases)
    assert (out / "decoded.mp4").is_file()


def test_a_long_1080p_gop_index_is_not_refused_for_its_whole_size():
    """A GOP file decodes a GOP at a time: its index may describe 600 1080p frames (3.7e9
    output values, over the one-file limit of 2^30); each GOP's own header still has that
    limit. The first 600-frame 1080p file was written and then refused by `inr decode`."""
    from inr.export.schema import LIMITS

    signal = {"kind": "video", "shape": [600, 1080, 1920, 3], "fps": 25.0}
    assert 600 * 1080 * 1920 * 3 > LIMITS["output_values"]
    header = {"signal": signal, "model": "grid", "gops": [{"start": 12 * i, "frames": 12, "bytes": 100} for i in range(50)]}
    gops = gopfile.check_index(header, 50, 50 * 100, 64)
    assert len(gops) == 50 and gops[-1].start == 588
