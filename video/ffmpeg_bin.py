"""Which ffmpeg binary to run: $INR_FFMPEG, else the one bundled with imageio-ffmpeg.

The bundled binary is the default (not a system ffmpeg on PATH) because its encoders are
known (libx264, libx265); a user who wants their own sets INR_FFMPEG.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache

from inr.errors import InrError


def ffmpeg_exe() -> str:
    override = os.environ.get("INR_FFMPEG")
    if override:
        path = shutil.which(override) or override
        if not os.path.isfile(path):
            raise InrError(f"INR_FFMPEG={override} does not point to an ffmpeg binary")
        return path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=8)
def _encoders(exe: str) -> frozenset[str]:
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def require_encoder(name: str) -> None:
    exe = ffmpeg_exe()
    if name not in _encoders(exe):
        raise InrError(f"ffmpeg at {exe} has no '{name}' encoder; install one that does or set INR_FFMPEG")
