"""Codec-baseline defaults: the one place the comparison, the job server's playback copies and
the app take their CRFs, presets and codecs from, so a report and a side-by-side player show
the same baseline settings."""
from __future__ import annotations

DEFAULT_VIDEO_CODECS = ("h264", "h265")
DEFAULT_PRESETS = ("medium", "veryslow")  # x264/x265's default and their best-compressing practical preset
DEFAULT_CRFS = (18, 23, 28, 33, 38, 43, 48)  # a sweep wide enough to bracket the INR rates

# The rate-matched H.264 shown beside an .inr (video.playback): x264's default preset.
PLAYBACK_CODEC = "h264"
PLAYBACK_PRESET = "medium"
VIEWING_CRF = 10  # re-wrapping decoded frames for a browser: near-lossless, so it adds no visible loss
