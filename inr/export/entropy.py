"""Entropy coding of integer symbols with constriction's ANS coder.

Each tensor picks the cheapest of three models, counting the bytes of the model itself:
  0 histogram  -- exact symbol counts (sparse varints): best for large tensors;
  1 Laplace    -- quantized Laplace(mean, scale), 8 bytes: best for small peaky tensors;
  2 Gaussian   -- quantized Gaussian(mean, scale), 8 bytes.
The decoder rebuilds the identical model from those stored statistics. Pruning masks are
coded as binary symbols with the kept fraction as the model.

Block layout (little endian): u8 model | model params | varint n_words | n_words x u32.
"""
from __future__ import annotations

import struct

import constriction
import numpy as np

from inr.errors import InrError

HISTOGRAM, LAPLACE, GAUSSIAN = 0, 1, 2
MODEL_NAMES = {HISTOGRAM: "histogram", LAPLACE: "laplace", GAUSSIAN: "gaussian"}


class EntropyError(InrError):
    """Corrupt or inconsistent entropy-coded data."""


# ------------------------------------------------------------------ varints
def put_varint(out: bytearray, v: int) -> None:
    if v < 0:
        raise ValueError("varint must be non-negative")
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return


def get_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if pos >= len(buf):
            raise EntropyError("truncated varint")
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, pos
        shift += 7
        if shift > 63:
            raise EntropyError("varint too long")


class Reader:
    """Bounds-checked cursor over a byte buffer."""

    def __init__(self, buf: bytes | memoryview):
        self.buf, self.pos = memoryview(buf), 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise EntropyError("block runs past the end of its section")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        v, self.pos = get_varint(self.buf, self.pos)
        return v

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos


# ------------------------------------------------------------------ models
def _model(kind: int, params, alphabet: int):
    m = constriction.stream.model
    if kind == HISTOGRAM:
        return m.Categorical(params, perfect=False)
    mean, scale = params
    if not (np.isfinite(mean) and np.isfinite(scale) and scale > 0 and abs(mean) < 1e9):
        raise EntropyError("invalid entropy-model parameters")
    cls = m.QuantizedLaplace if kind == LAPLACE else m.QuantizedGaussian
    return cls(0, alphabet - 1, float(mean), float(scale))


def _encode_with(symbols: np.ndarray, model) -> np.ndarray:
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(symbols, model)
    return coder.get_compressed()


def _histogram_params(symbols: np.ndarray, alphabet: int) -> tuple[np.ndarray, bytes]:
    counts = np.bincount(symbols, minlength=alphabet).astype(np.int64)
    out = bytearray()
    nz = np.flatnonzero(counts)
    put_varint(out, len(nz))
    prev = 0
    for s in nz:
        put_varint(out, int(s) - prev)
        put_varint(out, int(counts[s]))
        prev = int(s)
    return counts.astype(np.float64), bytes(out)


def encode_symbols(symbols: np.ndarray, alphabet: int) -> tuple[bytes, str]:
    """Symbols in [0, alphabet) -> (block bytes, model name used)."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
    if symbols.size == 0:
        return bytes([HISTOGRAM, 0, 0]), "histogram"
    best: tuple[bytes, str] | None = None
    counts, hist_bytes = _histogram_params(symbols, alphabet)
    mean = float(np.float32(symbols.mean()))
    std = float(symbols.std())
    candidates = [
        (HISTOGRAM, counts, hist_bytes),
        (LAPLACE, (mean, float(np.float32(max(std / np.sqrt(2), 0.05)))), None),
        (GAUSSIAN, (mean, float(np.float32(max(std, 0.05)))), None),
    ]
    for kind, params, param_bytes in candidates:
        words = _encode_with(symbols, _model(kind, params, alphabet))
        block = bytearray([kind])
        block += param_bytes if param_bytes is not None else struct.pack("<ff", *params)
        put_varint(block, len(words))
        block += words.astype("<u4").tobytes()
        if best is None or len(block) < len(best[0]):
            best = (bytes(block), MODEL_NAMES[kind])
    assert best is not None
    return best


def decode_symbols(reader: Reader, count: int, alphabet: int) -> np.ndarray:
    """Read one block written by `encode_symbols` and decode `count` symbols."""
    (kind,) = reader.unpack("<B")
    if kind == HISTOGRAM:
        n = reader.varint()
        if n > alphabet:
            raise EntropyError("histogram has more entries than symbols")
        counts = np.zeros(alphabet, dtype=np.float64)
        s = 0
        for i in range(n):
            delta = reader.varint()
            s += delta
            c = reader.varint()
            if s >= alphabet or c == 0 or (i > 0 and delta == 0):
                raise EntropyError("invalid histogram")
            counts[s] = c
        params = counts
        if count and n == 0:
            raise EntropyError("empty histogram for non-empty tensor")
    elif kind in (LAPLACE, GAUSSIAN):
        params = reader.unpack("<ff")
    else:
        raise EntropyError(f"unknown entropy model {kind}")
    n_words = reader.varint()
    if n_words * 4 > reader.remaining:
        raise EntropyError("compressed data runs past the end of its section")
    words = np.frombuffer(reader.take(n_words * 4), dtype="<u4").astype(np.uint32)
    if count == 0:
        return np.zeros(0, dtype=np.int32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        out = coder.decode(_model(kind, params, alphabet), count)
    except EntropyError:
        raise
    except Exception as exc:  # constriction raises on inconsistent streams
        raise EntropyError(f"entropy decoding failed ({exc})") from None
    return np.asarray(out, dtype=np.int32)


# ------------------------------------------------------------------ masks
def encode_mask(mask: np.ndarray) -> bytes:
    bits = np.ascontiguousarray(mask, dtype=np.int32).ravel()
    kept = int(bits.sum())
    out = bytearray()
    put_varint(out, kept)
    if 0 < kept < bits.size:
        words = _encode_with(bits, _mask_model(kept, bits.size))
        put_varint(out, len(words))
        out += words.astype("<u4").tobytes()
    return bytes(out)


def _mask_model(kept: int, total: int):
    return constriction.stream.model.Categorical(np.array([total - kept, kept], dtype=np.float64), perfect=False)


def decode_mask(reader: Reader, total: int) -> np.ndarray:
    kept = reader.varint()
    if kept > total:
        raise EntropyError("mask keeps more entries than the tensor has")
    if kept in (0, total):
        return np.full(total, 1 if kept else 0, dtype=np.int32)
    n_words = reader.varint()
    if n_words * 4 > reader.remaining:
        raise EntropyError("mask data runs past the end of its section")
    words = np.frombuffer(reader.take(n_words * 4), dtype="<u4").astype(np.uint32)
    try:
        bits = np.asarray(constriction.stream.stack.AnsCoder(words).decode(_mask_model(kept, total), total), dtype=np.int32)
    except Exception as exc:
        raise EntropyError(f"mask decoding failed ({exc})") from None
    if int(bits.sum()) != kept:
        raise EntropyError("mask does not match its kept count")
    return bits
