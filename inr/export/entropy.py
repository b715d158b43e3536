"""Entropy coding of integer symbols with constriction's ANS coder.

Entropy models are small registered classes (`EntropyModel`, `register_entropy_model`);
each tensor picks the cheapest, counting the bytes of the model itself:
  0 histogram  -- exact symbol counts (sparse varints): best for large tensors;
  1 Laplace    -- quantized Laplace(mean, scale), 8 bytes: best for small peaky tensors;
  2 Gaussian   -- quantized Gaussian(mean, scale), 8 bytes.
The decoder rebuilds the identical model from those stored statistics. Pruning masks are
coded as binary symbols with the kept fraction as the model.

Block layout (little endian): u8 model | model params | varint n_words | n_words x u32.
"""
from __future__ import annotations

import math
import struct
from typing import ClassVar

import constriction
import numpy as np

from inr.bitstream import BitstreamError
from inr.errors import InrError

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
def _encode_with(symbols: np.ndarray, model) -> np.ndarray:
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(symbols, model)
    return coder.get_compressed()


class EntropyModel:
    """One way to code a tensor's integer symbols: the model's parameters are written before
    the ANS stream, and the decoder rebuilds the identical model from them. Each model sees
    the tensor's shape, so a model that predicts from position or from neighbours (a context
    model) is one more subclass: override `encode`/`decode` and register it."""

    id: ClassVar[int]  # the u8 that starts a block
    name: ClassVar[str]  # what the header's `coder` field says

    def __init__(self, alphabet: int, shape: tuple[int, ...]):
        self.alphabet, self.shape = alphabet, shape

    def fit(self, symbols: np.ndarray) -> bytes:
        """Choose the parameters for these symbols; return their bytes."""
        raise NotImplementedError

    def read(self, reader: Reader) -> None:
        """Read the parameters `fit` wrote (raise EntropyError for invalid ones)."""
        raise NotImplementedError

    def coder_model(self):
        """One constriction model for every symbol (what `encode`/`decode` use by default)."""
        raise NotImplementedError

    def encode(self, symbols: np.ndarray) -> np.ndarray:
        return _encode_with(symbols, self.coder_model())

    def decode(self, words: np.ndarray, count: int) -> np.ndarray:
        return np.asarray(constriction.stream.stack.AnsCoder(words).decode(self.coder_model(), count), dtype=np.int32)


ENTROPY_MODELS: dict[int, type[EntropyModel]] = {}


def register_entropy_model(cls: type[EntropyModel]) -> type[EntropyModel]:
    """Add a model to the ones every tensor tries (the cheapest block wins)."""
    if cls.id in ENTROPY_MODELS or not 0 <= cls.id < 256:
        raise ValueError(f"entropy model id {cls.id} is taken or out of range")
    ENTROPY_MODELS[cls.id] = cls
    return cls


def coder_names() -> list[str]:
    return sorted(cls.name for cls in ENTROPY_MODELS.values())


@register_entropy_model
class Histogram(EntropyModel):
    """Exact symbol counts (sparse varints): best for large tensors."""

    id, name = 0, "histogram"

    def fit(self, symbols):
        self.counts = np.bincount(symbols, minlength=self.alphabet).astype(np.float64)
        out = bytearray()
        nz = np.flatnonzero(self.counts)
        put_varint(out, len(nz))
        prev = 0
        for s in nz:
            put_varint(out, int(s) - prev)
            put_varint(out, int(self.counts[s]))
            prev = int(s)
        return bytes(out)

    def read(self, reader):
        n = reader.varint()
        if n > self.alphabet:
            raise EntropyError("histogram has more entries than symbols")
        counts = np.zeros(self.alphabet, dtype=np.float64)
        s = 0
        for i in range(n):
            delta = reader.varint()
            s += delta
            c = reader.varint()
            if s >= self.alphabet or c == 0 or (i > 0 and delta == 0):
                raise EntropyError("invalid histogram")
            counts[s] = c
        if math.prod(self.shape) and n == 0:
            raise EntropyError("empty histogram for non-empty tensor")
        self.counts = counts

    def coder_model(self):
        return constriction.stream.model.Categorical(self.counts, perfect=False)


class _Parametric(EntropyModel):
    """A quantized continuous density with a stored float32 mean and scale (8 bytes)."""

    def _scale(self, std: float) -> float:
        raise NotImplementedError

    def fit(self, symbols):
        self.mean = float(np.float32(symbols.mean()))
        self.scale = float(np.float32(max(self._scale(float(symbols.std())), 0.05)))
        return struct.pack("<ff", self.mean, self.scale)

    def read(self, reader):
        self.mean, self.scale = reader.unpack("<ff")
        if not (np.isfinite(self.mean) and np.isfinite(self.scale) and self.scale > 0 and abs(self.mean) < 1e9):
            raise EntropyError("invalid entropy-model parameters")


@register_entropy_model
class Laplace(_Parametric):
    """Quantized Laplace(mean, scale): best for small peaky tensors."""

    id, name = 1, "laplace"

    def _scale(self, std):
        return std / np.sqrt(2)

    def coder_model(self):
        return constriction.stream.model.QuantizedLaplace(0, self.alphabet - 1, self.mean, self.scale)


@register_entropy_model
class Gaussian(_Parametric):
    """Quantized Gaussian(mean, scale)."""

    id, name = 2, "gaussian"

    def _scale(self, std):
        return std

    def coder_model(self):
        return constriction.stream.model.QuantizedGaussian(0, self.alphabet - 1, self.mean, self.scale)


def encode_symbols(symbols: np.ndarray, alphabet: int, shape: tuple[int, ...] | None = None) -> tuple[bytes, str]:
    """Symbols in [0, alphabet) of a tensor of `shape` (default: flat) -> (block bytes, name
    of the entropy model used): every registered model is tried, the smallest block wins."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
    shape = tuple(shape) if shape is not None else (symbols.size,)
    if symbols.size == 0:
        return bytes([Histogram.id, 0, 0]), Histogram.name
    best: tuple[bytes, str] | None = None
    for cls in ENTROPY_MODELS.values():
        model = cls(alphabet, shape)
        block = bytearray([cls.id]) + model.fit(symbols)
        words = model.encode(symbols)
        put_varint(block, len(words))
        block += words.astype("<u4").tobytes()
        if best is None or len(block) < len(best[0]):
            best = (bytes(block), cls.name)
    assert best is not None
    return best


def decode_symbols(reader: Reader, count: int, alphabet: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read one block written by `encode_symbols` and decode `count` symbols."""
    (kind,) = reader.unpack("<B")
    cls = ENTROPY_MODELS.get(kind)
    if cls is None:
        raise EntropyError(f"unknown entropy model {kind}")
    model = cls(alphabet, tuple(shape) if shape is not None else (count,))
    model.read(reader)
    n_words = reader.varint()
    if n_words * 4 > reader.remaining:
        raise EntropyError("compressed data runs past the end of its section")
    words = np.frombuffer(reader.take(n_words * 4), dtype="<u4").astype(np.uint32)
    if count == 0:
        return np.zeros(0, dtype=np.int32)
    try:
        return model.decode(words, count)
    except EntropyError:
        raise
    except Exception as exc:  # constriction raises on inconsistent streams
        raise EntropyError(f"entropy decoding failed ({exc})") from None


# ------------------------------------------------------------------ section streams
# A section that is one ANS stream (LATS, HLAT, the stream of NETW): u32 little-endian words,
# every one of them read by the decoder.
def ans_bytes(coder) -> bytes:
    """An encoder's stream as the section holds it."""
    return coder.get_compressed().astype("<u4").tobytes()


def ans_decoder(payload: bytes | memoryview, tag: str):
    """The ANS coder over a section's words, or BitstreamError."""
    if len(payload) % 4:
        raise BitstreamError(f"section {tag} is not whole 32-bit words", part="payload")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    return constriction.stream.stack.AnsCoder(words) if words.size else constriction.stream.stack.AnsCoder()


def ans_finish(coder, tag: str) -> None:
    """BitstreamError if the decoder left words of the section unread."""
    if not coder.is_empty():
        raise BitstreamError(f"section {tag} has unused data", part="payload")


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
