"""Audio below the command line: ffmpeg reading and writing (video.audio) and the `.inr`
header's audio fields (inr.export.schema).

The clip is made at run time with the standard library's `wave` module: 0.5 s at 8 kHz,
a chirp plus a tone on the left channel and another tone on the right, so channel order is
checked too.
"""
from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

from inr.bitstream import BitstreamError
from video.audio import parse_audio_stream, probe_audio, read_audio, write_audio

RATE, SECONDS = 8000, 0.5


def write_test_wav(path: Path, rate: int = RATE, seconds: float = SECONDS) -> Path:
    """Stereo 16-bit PCM: a 200 -> 600 Hz chirp plus a 440 Hz tone left, 300 Hz right."""
    frames = bytearray()
    for i in range(int(rate * seconds)):
        t = i / rate
        left = 0.4 * math.sin(2 * math.pi * (200 * t + 400 * t * t)) + 0.3 * math.sin(2 * math.pi * 440 * t)
        right = 0.5 * math.sin(2 * math.pi * 300 * t)
        frames += struct.pack("<hh", round(32767 * left), round(32767 * right))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_test_wav(tmp_path_factory.mktemp("audio") / "clip.wav")


def test_read_audio_keeps_rate_channels_and_samples(clip):
    samples, info = read_audio(clip)
    assert (info.sample_rate, info.channels) == (RATE, 2)
    assert tuple(samples.shape) == (int(RATE * SECONDS), 2)
    assert abs(float(samples[:, 1].abs().max()) - 0.5) < 1e-3  # the right channel's 0.5 sine


def test_write_audio_round_trips_wav_and_flac(clip, tmp_path):
    samples, _ = read_audio(clip)
    for name in ("copy.wav", "copy.flac"):
        out = write_audio(tmp_path / name, samples, RATE)
        back, info = read_audio(out)
        assert (info.sample_rate, info.channels) == (RATE, 2)
        assert float((back - samples).abs().max()) <= 1 / 32767  # 16-bit PCM both ways
    assert not list(tmp_path.glob(".*part*"))  # written under a temporary name, then renamed


@pytest.mark.parametrize(
    "line,channels",
    [
        ("Stream #0:0: Audio: pcm_s16le ([1][0][0][0] / 0x0001), 44100 Hz, stereo, s16, 1411 kb/s", 2),
        ("Stream #0:0(und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, 5.1(side), fltp, 384 kb/s", 6),
        ("Stream #0:1: Audio: flac, 96000 Hz, 4 channels, s32 (24 bit)", 4),
        ("Stream #0:0: Audio: mp3, 8000 Hz, mono, fltp, 64 kb/s", 1),
    ],
)
def test_parse_audio_stream_channels(line, channels):
    info = parse_audio_stream(f"Input #0, x, from 'a':\n  Duration: 00:00:01.50, bitrate: 1 kb/s\n  {line}\n", "a")
    assert info.channels == channels and info.duration == 1.5 and info.sample_rate > 0


def test_a_video_is_not_audio(tmp_path):
    from inr.errors import InrError
    from tests.conftest import SAMPLE_CLIP

    renamed = tmp_path / "clip.wav"
    renamed.write_bytes(SAMPLE_CLIP.read_bytes())
    with pytest.raises(InrError, match="not a readable audio file"):
        probe_audio(renamed)


def test_audio_header_needs_its_sample_rate(clip):
    """A decoder writes audio back at the header's rate, so an audio header without one (or
    with a nonsense one) is refused by the schema, before anything is built."""
    from inr import bitstream
    from inr.export.codec import decode_model
    from inr.export.hostile import seed_file
    from inr.signals import audio_signal

    samples, info = read_audio(clip)
    data = seed_file(audio_signal(samples[:400], sample_rate=info.sample_rate), "siren", 500)
    decode_model(data)
    box = bitstream.read(data)
    for bad in (None, 0, 44100.5, "8000"):
        header = {**box.header, "signal": {k: v for k, v in box.header["signal"].items() if k != "sample_rate"}}
        if bad is not None:
            header["signal"]["sample_rate"] = bad
        with pytest.raises(BitstreamError, match="sample_rate"):
            decode_model(bitstream.write(header, box.sections))
