"""Groups of frames (GOPs) in one `.inr` file: format version 2, an index then one complete
version-1 file per GOP, so a decoder can seek to the frames it needs.

    offset  size  field
    0       4     magic b"INRC"
    4       1     format version (2)
    5       1     flags (0; reserved)
    6       2     number of GOPs N (u16 LE, 1 .. MAX_GOPS)
    8       4     index length H (u32 LE)
    12      4     CRC32 of the index bytes
    16      H     index: zlib-compressed UTF-8 JSON (see `check_index`)
    16 + H  ...   N GOP payloads back to back; GOP i is a complete version-1 `.inr` file of
                  `gops[i].bytes` bytes holding frames start .. start + frames - 1

Each payload carries its own CRCs and header, checked by `codec.decode_model` when that GOP
is decoded; the index is checked whole (types, ranges, contiguous frame ranges, byte counts
that add up to the file size) before any payload is read. A version-1 file is the one-GOP
case: `open_index` reads both, so every decoder path handles old files too. See
docs/bitstream.md.
"""
from __future__ import annotations

import contextlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import torch

from inr import bitstream
from inr.bitstream import PREAMBLE, BitstreamError
from inr.export import codec, schema

VERSION = 2
MAX_GOPS = 65535  # the u16 count
INDEX_KEYS = ("signal", "model", "gops")


@dataclass(frozen=True)
class Gop:
    start: int  # first frame
    frames: int
    offset: int  # of its payload in the file
    size: int  # payload bytes

    @property
    def stop(self) -> int:
        return self.start + self.frames


@dataclass
class GopIndex:
    header: dict  # version 2: the index JSON; version 1: the file's own header
    gops: list[Gop]
    version: int
    index_bytes: int  # preamble + index (0 for a version-1 file: its header is in its payload)

    @property
    def frames(self) -> int:
        return self.gops[-1].stop

    @property
    def shape(self) -> list[int]:
        return list(self.header["signal"]["shape"])

    def covering(self, start: int, stop: int) -> list[int]:
        """Indices of the GOPs holding frames start .. stop - 1."""
        return [i for i, g in enumerate(self.gops) if g.start < stop and g.stop > start]


# ------------------------------------------------------------------ writing
def index_bytes(signal: dict, model: str, frames: list[int], sizes: list[int], extra: dict | None = None) -> bytes:
    """Preamble + index of a GOP file whose payloads (of `sizes` bytes, holding `frames`
    frames each) follow; the caller writes the payloads after it, in order."""
    if not 1 <= len(frames) <= MAX_GOPS or len(frames) != len(sizes):
        raise BitstreamError(f"a GOP file holds 1 to {MAX_GOPS} GOPs, got {len(frames)}")
    starts = [sum(frames[:i]) for i in range(len(frames))]
    header = {
        "signal": signal,
        "model": model,
        "gops": [{"start": s, "frames": f, "bytes": b} for s, f, b in zip(starts, frames, sizes)],
        **(extra or {}),
    }
    hdr = bitstream.encode_header(header)
    return PREAMBLE.pack(bitstream.MAGIC, VERSION, bitstream.HEADER_FLAGS, len(frames), len(hdr), zlib.crc32(hdr)) + hdr


def pack(signal: dict, model: str, parts: list[tuple[int, bytes]], extra: dict | None = None) -> bytes:
    """A whole GOP file in memory from (frames, version-1 bytes) pairs (tests, small files)."""
    frames, blobs = [f for f, _ in parts], [b for _, b in parts]
    return index_bytes(signal, model, frames, [len(b) for b in blobs], extra) + b"".join(blobs)


# ------------------------------------------------------------------ reading
def check_index(header: dict, count: int, payload_bytes: int, index_len: int) -> list[Gop]:
    """The GOP list from a version-2 index: `signal` as in a version-1 header (video only),
    `model` a name, `gops` exactly `count` records {start, frames, bytes} with start 0, then
    each the previous one's end, frames summing to the signal's and bytes to `payload_bytes`."""
    missing = [k for k in INDEX_KEYS if k not in header]
    if missing:
        raise BitstreamError(f"GOP index lacks {', '.join(missing)}", part="header")
    signal = header["signal"]
    if not isinstance(signal, dict) or signal.get("kind") != "video":
        raise BitstreamError("GOP index signal must be a video", part="header")
    schema.check_signal(signal, streamed=True)
    if not isinstance(header["model"], str) or len(header["model"]) > 64:
        raise BitstreamError("GOP index model must be a short string", part="header")
    records = header["gops"]
    if not isinstance(records, list) or len(records) != count:
        raise BitstreamError(f"GOP index must list {count} GOPs (the preamble's count)", part="header")
    gops, start, offset = [], 0, PREAMBLE.size + index_len
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise BitstreamError(f"GOP index gops[{i}] must be an object", part="header")
        if schema.check_int(rec.get("start"), f"gops[{i}].start", 0, schema.LIMITS["frames"]) != start:
            raise BitstreamError(f"GOP {i} starts at frame {rec['start']}, not {start} where GOP {i - 1} ends", part="header")
        frames = schema.check_int(rec.get("frames"), f"gops[{i}].frames", 1, schema.LIMITS["frames"])
        size = schema.check_int(rec.get("bytes"), f"gops[{i}].bytes", PREAMBLE.size, payload_bytes)
        gops.append(Gop(start, frames, offset, size))
        start, offset = start + frames, offset + size
    if start != signal["shape"][0]:
        raise BitstreamError(f"GOPs hold {start} frames, the signal {signal['shape'][0]}", part="header")
    if offset - PREAMBLE.size - index_len != payload_bytes:
        raise BitstreamError(f"GOP payloads add up to {offset - PREAMBLE.size - index_len} bytes, the file has {payload_bytes}", part="container")
    return gops


def _single(data: bytes) -> GopIndex:
    """A version-1 file as a one-GOP index."""
    box = bitstream.read(data)
    schema.check_structure(box.header)
    shape = box.header["signal"]["shape"]
    frames = shape[0] if box.header["signal"]["kind"] == "video" else 1
    return GopIndex(box.header, [Gop(0, frames, 0, len(data))], 1, 0)


def read_index(f: BinaryIO, size: int) -> GopIndex:
    """The index of an open `.inr` file of `size` bytes, reading only the preamble and the
    index for version 2 (a version-1 file is read whole: it is one GOP)."""
    head = f.read(PREAMBLE.size)
    if len(head) < PREAMBLE.size:
        raise BitstreamError(f"file too short ({len(head)} bytes) to be an .inr bitstream")
    if head[4] != VERSION:
        f.seek(0)
        return _single(f.read())
    count, index_len, crc, flags = bitstream.read_preamble(head, VERSION)
    if PREAMBLE.size + index_len > size:
        raise BitstreamError("index length exceeds the file (truncated or corrupt)")
    if not 1 <= count <= MAX_GOPS:
        raise BitstreamError(f"GOP count {count} is outside [1, {MAX_GOPS}]", part="limits")
    header = bitstream.decode_header(f.read(index_len), crc, flags)
    gops = check_index(header, count, size - PREAMBLE.size - index_len, index_len)
    return GopIndex(header, gops, VERSION, PREAMBLE.size + index_len)


def read_payload(f: BinaryIO, gop: Gop) -> bytes:
    f.seek(gop.offset)
    data = f.read(gop.size)
    if len(data) != gop.size:
        raise BitstreamError("GOP payload runs past the end of the file (truncated)")
    return data


def check_payload_header(index: GopIndex, i: int, header: dict) -> None:
    """A GOP's own header must describe frames of the index's size, as many as the index says."""
    want = [index.gops[i].frames, *index.shape[1:]] if index.version == VERSION else index.shape
    if list(header["signal"]["shape"]) != want:
        raise BitstreamError(f"GOP {i} holds a signal of shape {header['signal']['shape']}, the index says {want}", part="header")


def open_index(source: Path | str | bytes) -> GopIndex:
    with _open(source) as (f, size):
        return read_index(f, size)


def decode_range(source: Path | str | bytes, start: int, stop: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Frames start .. stop - 1 of a video file (a path, or the file's bytes), one GOP's worth
    at a time ((n, H, W, C) float in [0, 1] on the CPU): only the GOPs holding them are read
    and decoded, only the frames asked for are rendered, and only a render batch is held."""
    with _open(source) as (f, size):
        index = read_index(f, size)
        if index.header["signal"]["kind"] != "video":
            raise BitstreamError("frame ranges apply to videos; this file holds an image", part="header")
        for i in index.covering(start, stop):
            gop = index.gops[i]
            _, _, model, header = codec.decode_model(read_payload(f, gop))
            check_payload_header(index, i, header)
            yield from model.render_frames(header["signal"]["shape"], device, max(start - gop.start, 0), min(stop, gop.stop) - gop.start)


@contextlib.contextmanager
def _open(source: Path | str | bytes) -> Iterator[tuple[BinaryIO, int]]:
    if isinstance(source, (bytes, bytearray)):
        yield io.BytesIO(source), len(source)
        return
    path = Path(source)
    with path.open("rb") as f:
        yield f, path.stat().st_size
