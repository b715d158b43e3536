"""Shared fixtures: small real media derived at run time from the bundled Bunny samples."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "inr" / "assets"
SAMPLE_IMAGE = ASSETS / "bunny_256.png"
SAMPLE_CLIP = ASSETS / "bunny_320x180_32f.mp4"
SHARED_MEDIA = ROOT.parent / "shared" / "media"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def sample_image() -> torch.Tensor:
    from video.media import load_image

    return load_image(SAMPLE_IMAGE)


@pytest.fixture(scope="session")
def crop64(sample_image) -> torch.Tensor:
    """A 64x64 crop of a real frame: detailed enough that PSNR thresholds mean something."""
    return sample_image[96:160, 96:160]


@pytest.fixture(scope="session")
def tiny_clip() -> torch.Tensor:
    """8 real frames at 96x64 (uint8, T x H x W x 3)."""
    from video.media import ReadOptions, read_media

    frames, _ = read_media(SAMPLE_CLIP, ReadOptions(max_frames=8, resize=(96, 64)))
    return frames


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory, tiny_clip) -> Path:
    """The tiny clip written losslessly, for CLI tests that read files."""
    from video.media import write_video

    path = tmp_path_factory.mktemp("media") / "tiny.mkv"
    return write_video(path, tiny_clip, fps=25.0, lossless=True)



@pytest.fixture(scope="session")
def hnerv_file(tiny_clip) -> bytes:
    """A 2-frame 32x32 HNeRV file with pruning masks and embeddings: every section present."""
    from inr.export.hostile import seed_file
    from inr.signals import video_signal

    return seed_file(video_signal(tiny_clip[:2, :32, :32]), "hnerv", 6_000, prune=0.2)


@pytest.fixture(scope="session")
def shacira_file(crop64) -> bytes:
    """A 32x32 SHACIRA image file: hash-grid latents in section HLAT."""
    from inr.export.hostile import seed_file
    from inr.signals import image_signal

    return seed_file(image_signal(crop64[:32, :32]), "shacira", 2_000)


@pytest.fixture(scope="session")
def siren_file(crop64) -> bytes:
    """A 32x32 SIREN image file: the coordinate-model path."""
    from inr.export.hostile import seed_file
    from inr.signals import image_signal

    return seed_file(image_signal(crop64[:32, :32]), "siren", 2_000)


@pytest.fixture(scope="session")
def gop_file(hnerv_file) -> bytes:
    """A format-version-2 file: two GOPs of 2 frames, each the HNeRV file (4 frames in all)."""
    from inr.export import gop

    return gop.pack({"kind": "video", "shape": [4, 32, 32, 3], "fps": 25.0}, "hnerv", [(2, hnerv_file), (2, hnerv_file)])


def _synthetic_clip(path: Path, frames: int, size: str = "48x32") -> Path:
    """A synthetic moving test pattern (ffmpeg's testsrc), lossless."""
    import subprocess

    from video.ffmpeg_bin import ffmpeg_exe

    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25", "-frames:v", str(frames),
         "-c:v", "libx264rgb", "-qp", "0", "-y", str(path)],
        check=True,
    )
    return path


@pytest.fixture(scope="session")
def synthetic_clip():
    """Make a synthetic test-pattern clip: synthetic_clip(path, frames, 'WxH')."""
    return _synthetic_clip


@pytest.fixture(scope="session")
def clip12(tmp_path_factory) -> Path:
    """12 frames of 48x32 test pattern: three GOPs of 4."""
    return _synthetic_clip(tmp_path_factory.mktemp("gop") / "c12.mkv", 12)
