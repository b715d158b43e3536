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


def test_the_header_dictionary_is_the_one_the_spec_pins():
    digest = hashlib.sha256((ROOT / "inr" / "assets" / "header_dict.bin").read_bytes()).hexdigest()
    assert digest == bitstream.HEADER_DICT_SHA256
    assert digest in (ROOT / "docs" / "bitstream.md").read_text()


def test_a_header_written_with_the_dictionary_is_smaller_and_reads_back(siren_file):
    box = bitstream.read(siren_file)
    raw = json.dumps(box.header, separators=(",", ":"), sort_keys=True).encode()
    assert siren_file[5] == bitstream.FLAG_HEADER_DICT
    assert box.sizes["header"] < len(zlib.compress(raw, 9))
    assert bitstream.read(bitstream.write(box.header, box.sections)).header == box.header


def _plain_zlib_file(header: dict, sections: dict[str, bytes], flags: int = 0) -> bytes:
    """A container as files before the dictionary were written: flags 0, plain zlib header."""
    hdr = zlib.compress(json.dumps(header, separators=(",", ":"), sort_keys=True).encode(), 9)
    out = bytearray(bitstream.PREAMBLE.pack(bitstream.MAGIC, bitstream.VERSION, flags, len(sections), len(hdr), zlib.crc32(hdr)))
    out += hdr
    for tag, payload in sections.items():
        out += bitstream.SECTION.pack(tag.encode(), len(payload), zlib.crc32(payload)) + payload
    return bytes(out)


def test_files_without_the_dictionary_still_read(siren_file):
    box = bitstream.read(siren_file)
    old = bitstream.read(_plain_zlib_file(box.header, box.sections))
    assert old.header == box.header and old.sections == box.sections


@pytest.mark.parametrize("flags", [2, 0x80])
def test_reserved_flags_are_refused(siren_file, flags):
    data = bytearray(siren_file)
    data[5] |= flags
    with pytest.raises(BitstreamError, match="unknown flags"):
        bitstream.read(bytes(data))


def test_a_dictionary_header_flagged_as_plain_is_refused_in_one_line(siren_file):
    data = bytearray(siren_file)
    data[5] = 0
    with pytest.raises(BitstreamError, match=re.escape("header is not valid compressed JSON")):
        bitstream.read(bytes(data))
    assert struct.unpack_from("<B", siren_file, 5)[0] == 1
