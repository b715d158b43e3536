"""The `.inr` container: one writer, one reader, every byte accounted for.

    offset  size  field
    0       4     magic b"INRC"
    4       1     format version (1)
    5       1     flags: bit 0 = the header is compressed with the first preset dictionary
                  (inr/assets/header_dict.bin), bit 1 = with the second
                  (inr/assets/header_dict_2.bin); at most one of them; other bits reserved (0)
    6       2     number of sections (u16 LE)
    8       4     header length H (u32 LE)
    12      4     CRC32 of the header bytes
    16      H     header: zlib-compressed UTF-8 JSON (with the preset dictionary flagged)
    ...           sections, each: tag (4 ASCII bytes) | length L (u32) | CRC32 (u32) | L bytes

Nothing may follow the last section. The reader checks sizes against the file and against
hard limits before allocating, verifies every CRC, and raises `BitstreamError` (an InrError:
exit code 2 in the CLI) for anything malformed. See docs/bitstream.md.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from inr.errors import InrError

MAGIC = b"INRC"
VERSION = 1
PREAMBLE = struct.Struct("<4sBBHII")  # magic, version, flags, n_sections, header_len, header_crc
SECTION = struct.Struct("<4sII")  # tag, length, crc32
MAX_HEADER_BYTES = 256 << 10
FLAG_HEADER_DICT = 1
FLAG_HEADER_DICT_2 = 2
# The preset dictionaries are part of the format: files written with one need its exact bytes.
# flag -> (file in inr/assets, SHA-256). Writers use the newest (`HEADER_FLAGS`); the first
# stays for the files written with it.
HEADER_DICTS = {
    FLAG_HEADER_DICT: ("header_dict.bin", "706bba5b546fd3a25fdeee545652e1c37227af77196799c87ba5b39096added8"),
    FLAG_HEADER_DICT_2: ("header_dict_2.bin", "bc5e6edf363a697c7b0ebd6084a14996c2b6e041146af5fe9d6e6f50a13619c2"),
}
HEADER_FLAGS = FLAG_HEADER_DICT_2  # the flags a writer sets: the header dictionary it compresses with
MAX_HEADER_JSON = 4 << 20
MAX_SECTIONS = 16
KNOWN_TAGS = (b"QPRM", b"MASK", b"WGTS", b"EMBD", b"LATS", b"HLAT", b"NETW")


@cache
def header_dict(flag: int = HEADER_FLAGS) -> bytes:
    """The preset dictionary of header flag `flag`: headers of small files of every family
    (scripts/make_header_dict.py), so a header's repeated names, keys and values cost a few
    bits each. The first (a 256x256 grid image at 0.25 bpp: 560 -> about 230 header bytes of
    2.2 KB) predates the grid family's later config fields and image layouts; the second holds
    them (the same header: about 65 bytes)."""
    name, digest = HEADER_DICTS[flag]
    data = (Path(__file__).parent / "assets" / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise InrError(f"inr/assets/{name} is not the format's header dictionary (reinstall inr-codec)")
    return data


PARTS = ("container", "header", "limits", "payload")


class BitstreamError(InrError):
    """The file is not a valid `.inr` bitstream (truncated, corrupted, or out of limits).

    `part` says which check refused it, so tests and tools can tell a damaged container from
    a hostile header, a header beyond this decoder's limits, or bad section contents:
    "container" (framing, CRCs, header JSON), "header" (schema: types, consistency), "limits"
    (sizes, work, memory) or "payload" (section contents)."""

    def __init__(self, message: str, part: str = "container"):
        super().__init__(message)
        self.part = part if part in PARTS else "container"


@dataclass
class Container:
    header: dict
    sections: dict[str, bytes]
    sizes: dict[str, int]  # byte accounting: "preamble", "header", "section:TAG" (framing included)


def write(header: dict, sections: dict[str, bytes], flags: int = HEADER_FLAGS) -> bytes:
    """The file; `flags` other than the default only to write as earlier writers did (tests)."""
    hdr = encode_header(header, flags)
    out = bytearray(PREAMBLE.pack(MAGIC, VERSION, flags, len(sections), len(hdr), zlib.crc32(hdr)))
    out += hdr
    for tag, payload in sections.items():
        t = tag.encode("ascii")
        if t not in KNOWN_TAGS:
            raise ValueError(f"unknown section {tag}")
        out += SECTION.pack(t, len(payload), zlib.crc32(payload))
        out += payload
    return bytes(out)


def read_preamble(data: bytes, version: int = VERSION) -> tuple[int, int, int, int]:
    """(count, header length, header CRC, flags) from the 16-byte preamble of a file of format
    `version`; `data` holds at least the preamble. Version 2 (groups of frames) is read by
    `inr.export.gop`; its count is the number of GOPs."""
    if len(data) < PREAMBLE.size:
        raise BitstreamError(f"file too short ({len(data)} bytes) to be an .inr bitstream")
    magic, found, flags, count, header_len, header_crc = PREAMBLE.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError("not an .inr file (bad magic)")
    if found != version:
        raise BitstreamError(f"unsupported .inr format version {found} here (expected {version})")
    if flags not in (0, *HEADER_DICTS):
        raise BitstreamError("unknown flags set")
    if header_len > MAX_HEADER_BYTES:
        raise BitstreamError("header length exceeds the file (truncated or corrupt)")
    return count, header_len, header_crc, flags


def decode_header(hdr: bytes, header_crc: int, flags: int) -> dict:
    """The header JSON object from its compressed bytes (with the preset dictionary `flags`
    names, if any), CRC and size limits checked."""
    if zlib.crc32(hdr) != header_crc:
        raise BitstreamError("header CRC mismatch (corrupt file)")
    try:
        dec = zlib.decompressobj(zdict=header_dict(flags)) if flags in HEADER_DICTS else zlib.decompressobj()
        raw = dec.decompress(hdr, MAX_HEADER_JSON)
        if dec.unconsumed_tail or not dec.eof:
            raise BitstreamError("header does not decompress cleanly")
        header = json.loads(raw.decode("utf-8"))
    except BitstreamError:
        raise
    except Exception as exc:
        raise BitstreamError(f"header is not valid compressed JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise BitstreamError("header must be a JSON object")
    return header


def encode_header(header: dict, flags: int = HEADER_FLAGS) -> bytes:
    """Compressed with the preset dictionary `flags` names (none for 0): a writer sets the same
    `flags` in the preamble."""
    packer = zlib.compressobj(9, zdict=header_dict(flags)) if flags in HEADER_DICTS else zlib.compressobj(9)
    hdr = packer.compress(json.dumps(header, separators=(",", ":"), sort_keys=True).encode()) + packer.flush()
    if len(hdr) > MAX_HEADER_BYTES:
        raise BitstreamError("header too large")
    return hdr


def read(data: bytes) -> Container:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError("expected bytes")
    data = bytes(data)
    n_sections, header_len, header_crc, flags = read_preamble(data)
    if n_sections > MAX_SECTIONS:
        raise BitstreamError(f"too many sections ({n_sections})")
    if PREAMBLE.size + header_len > len(data):
        raise BitstreamError("header length exceeds the file (truncated or corrupt)")
    pos = PREAMBLE.size
    header = decode_header(data[pos : pos + header_len], header_crc, flags)
    pos += header_len
    sizes = {"preamble": PREAMBLE.size, "header": header_len}
    sections: dict[str, bytes] = {}
    for _ in range(n_sections):
        if pos + SECTION.size > len(data):
            raise BitstreamError("truncated section table")
        tag, length, crc = SECTION.unpack_from(data, pos)
        pos += SECTION.size
        if tag not in KNOWN_TAGS:
            raise BitstreamError(f"unknown section tag {tag!r}")
        name = tag.decode()
        if name in sections:
            raise BitstreamError(f"duplicate section {name}")
        if pos + length > len(data):
            raise BitstreamError(f"section {name} runs past the end of the file (truncated)")
        payload = data[pos : pos + length]
        if zlib.crc32(payload) != crc:
            raise BitstreamError(f"section {name} CRC mismatch (corrupt file)")
        sections[name] = payload
        sizes[f"section:{name}"] = SECTION.size + length
        pos += length
    if pos != len(data):
        raise BitstreamError(f"{len(data) - pos} unexpected trailing bytes")
    return Container(header, sections, sizes)
