"""Media I/O through ffmpeg: probing, geometry options, lossless round trips, refusals."""
from __future__ import annotations

import pytest
import torch

from inr.errors import InrError
from tests.conftest import SAMPLE_CLIP, SHARED_MEDIA
from video.media import ReadOptions, parse_size, probe, read_media, write_video


def test_probe_bundled_clip():
    info = probe(SAMPLE_CLIP)
    assert (info.kind, info.width, info.height, info.frames) == ("video", 320, 180, 32)
    assert abs(info.fps - 25) < 0.01


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_lossless_round_trip_is_exact(tmp_path, tiny_clip, suffix):
    path = write_video(tmp_path / f"clip{suffix}", tiny_clip, fps=25, lossless=True)
    back, info = read_media(path)
    assert info.frames == tiny_clip.shape[0]
    assert torch.equal(back, tiny_clip)


def test_png_folder_round_trip(tmp_path, tiny_clip):
    folder = write_video(tmp_path / "frames", tiny_clip[:3])
    assert len(list(folder.glob("*.png"))) == 3
    back, info = read_media(folder)
    assert info.kind == "frames" and torch.equal(back, tiny_clip[:3])


def test_lossy_mp4_is_close(tmp_path, tiny_clip):
    path = write_video(tmp_path / "clip.mp4", tiny_clip, fps=25)
    back, _ = read_media(path)
    assert back.shape == tiny_clip.shape
    assert (back.float() - tiny_clip.float()).abs().mean() < 6


def test_crop_resize_and_range():
    frames, _ = read_media(SAMPLE_CLIP, ReadOptions(max_frames=3, start=2, resize=(160, 90), crop=(160, 80)))
    assert frames.shape == (3, 80, 160, 3)
    full, _ = read_media(SAMPLE_CLIP, ReadOptions(max_frames=5))
    ranged, _ = read_media(SAMPLE_CLIP, ReadOptions(max_frames=2, start=3))
    assert torch.equal(ranged, full[3:5])


def test_refuses_what_would_not_fit():
    with pytest.raises(InrError, match="--max-frames or --resize"):
        read_media(SAMPLE_CLIP, ReadOptions(memory_limit=1_000_000))


def test_bad_inputs(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video at all")
    with pytest.raises(InrError, match="not a readable video"):
        probe(fake)
    with pytest.raises(InrError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(InrError, match="larger than the frame"):
        read_media(SAMPLE_CLIP, ReadOptions(crop=(999, 10)))
    for bad in ("12", "axb", "0x5"):
        with pytest.raises(InrError):
            parse_size(bad, "resize")


def test_shared_bunny_crop_like_hnerv():
    clip = SHARED_MEDIA / "bigbuckbunny.mp4"
    if not clip.is_file():
        pytest.skip("shared media not present")
    frames, info = read_media(clip, ReadOptions(max_frames=2, crop=(1280, 640)))
    assert info.width == 1280 and frames.shape == (2, 640, 1280, 3)
