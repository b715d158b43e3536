"""The container: the preset header dictionary is a format constant; files without it still read."""
from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from inr import bitstream
from inr.bitstream import BitstreamError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("flag", sorted(bitstream.HEADER_DICTS))
def test_the_header_dictionaries_are_the_ones_the_spec_pins(flag):
    name, pinned = bitstream.HEADER_DICTS[flag]
    digest = hashlib.sha256((ROOT / "inr" / "assets" / name).read_bytes()).hexdigest()
    assert digest == pinned
    assert digest in (ROOT / "docs" / "bitstream.md").read_text()


def test_a_header_written_with_the_dictionary_is_smaller_and_reads_back(siren_file):
    box = bitstream.read(siren_file)
    raw = json.dumps(box.header, separators=(",", ":"), sort_keys=True).encode()
    assert siren_file[5] == bitstream.HEADER_FLAGS == bitstream.FLAG_HEADER_DICT_2
    assert box.sizes["header"] < len(zlib.compress(raw, 9))
    assert bitstream.read(bitstream.write(box.header, box.sections)).header == box.header


def test_files_of_the_first_dictionary_still_read(siren_file):
    box = bitstream.read(siren_file)
    first = bitstream.write(box.header, box.sections, flags=bitstream.FLAG_HEADER_DICT)
    old = bitstream.read(first)
    assert old.header == box.header and old.sections == box.sections


def test_the_second_dictionary_makes_a_grid_image_header_small(sample_image):
    """What it is for: at 0.25 bpp a 256x256 image is ~2 KB, and the first dictionary left its
    header ~230 bytes (it predates the grid family's later fields and layouts). Under the
    second a header is about a hundred bytes (108 since `level_gain`, a field the dictionary
    predates: 8 more)."""
    import torch

    from inr.export.compress import ExportOptions, encode_to_bpp
    from inr.fit import FitConfig
    from inr.pipeline import FitOptions
    from inr.signals import image_signal

    opts = FitOptions(model="grid", fit=FitConfig(steps=2, seed=0))
    enc, _ = encode_to_bpp(image_signal(sample_image, source="still.png"), opts, ExportOptions(), 0.25, torch.device("cpu"))
    box = bitstream.read(enc.data)
    first = bitstream.read(bitstream.write(box.header, box.sections, flags=bitstream.FLAG_HEADER_DICT))
    assert first.header == box.header
    assert box.sizes["header"] < 120 < first.sizes["header"]


def test_files_without_the_dictionary_still_read(siren_file):
    box = bitstream.read(siren_file)
    old = bitstream.read(bitstream.write(box.header, box.sections, flags=0))
    assert old.header == box.header and old.sections == box.sections


@pytest.mark.parametrize("flags", [1, 4, 0x80])
def test_reserved_flags_are_refused(siren_file, flags):
    data = bytearray(siren_file)
    data[5] |= flags  # 1 | 2: two dictionaries at once
    with pytest.raises(BitstreamError, match="unknown flags"):
        bitstream.read(bytes(data))


def test_a_dictionary_header_flagged_as_plain_is_refused_in_one_line(siren_file):
    data = bytearray(siren_file)
    data[5] = 0
    with pytest.raises(BitstreamError, match=re.escape("header is not valid compressed JSON")):
        bitstream.read(bytes(data))
    assert struct.unpack_from("<B", siren_file, 5)[0] == bitstream.HEADER_FLAGS
