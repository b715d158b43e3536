"""Hostile `.inr` files made from a valid one: the fuzz mutators and the regression corpus.

Shared by tests/test_hostile_files.py, tests/test_bitstream_fuzz.py and bench/bench_fuzz.py so
that the bench measures the same attacks the tests pin down. Three mutators:

- `mutate_bytes`: raw damage (flips, overwrites, inserts, deletes, truncation); CRCs catch most;
- `mutate_section` / `mutate_header_text`: damage behind recomputed CRCs, so the entropy
  decoders and the header schema face it themselves;
- `mutate_header`: structural JSON edits (a value anywhere replaced by a hostile one of another
  type or size, or a key deleted), re-wrapped with valid CRCs.

`CORPUS` lists the cases a probe of the decoder found, each with the `BitstreamError.part`
that must refuse it.
"""
from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any

from inr import bitstream
from inr.bitstream import BitstreamError
from inr.export import schema

# Values of every JSON type and of hostile sizes, for structural mutation.
HOSTILE_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 3, 2**31, 2**32, 2**63, -(2**63), 10**30, 0.5, -1e308, 1e308,
    float("nan"), float("inf"), float("-inf"), "", "x", "3", "x" * 5000, [], [1], [[]], [1.5], ["a"],
    [2**31, 2**31, 2**31, 3], {}, {"a": 1}, [0] * 1000,
)


# ------------------------------------------------------------------ mutators
def mutate_bytes(data: bytes, rng: random.Random, count: int = 3) -> bytes:
    """Up to `count` random raw edits (CRCs are left as they are)."""
    buf = bytearray(data)
    for _ in range(count):
        if not buf:
            break
        i, op = rng.randrange(len(buf)), rng.randrange(5)
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i] = rng.randrange(256)
        elif op == 2:
            buf.insert(i, rng.randrange(256))
        elif op == 3:
            del buf[i]
        else:
            del buf[i:]
    return bytes(buf)


def rewrap(header: dict, sections: dict[str, bytes]) -> bytes | None:
    """A container with valid CRCs around whatever header and sections; None if the writer
    itself refuses (header too large)."""
    try:
        return bitstream.write(header, sections)
    except BitstreamError:
        return None


def mutate_section(data: bytes, rng: random.Random, count: int = 3) -> bytes | None:
    """Raw edits inside one section, CRC recomputed."""
    box = bitstream.read(data)
    tag = rng.choice(sorted(box.sections))
    sections = dict(box.sections)
    sections[tag] = mutate_bytes(sections[tag], rng, count)
    return rewrap(box.header, sections)


def mutate_header_text(data: bytes, rng: random.Random, count: int = 3) -> bytes | None:
    """Edits of the header's JSON text, CRC recomputed: mostly digits changed, inserted or
    deleted (numbers change, the JSON still parses), sometimes any byte; None when the result
    is not a JSON object (the container check covers that case already)."""
    box = bitstream.read(data)
    text = bytearray(json.dumps(box.header).encode())
    digits = [i for i, b in enumerate(text) if 48 <= b <= 57]
    if digits and rng.random() < 0.8:
        for i in sorted(rng.sample(digits, min(count, len(digits))), reverse=True):
            op = rng.randrange(3)
            if op == 0:
                text[i] = 48 + rng.randrange(10)
            elif op == 1:
                text[i:i] = bytes(48 + rng.randrange(10) for _ in range(rng.randrange(1, 12)))
            else:
                del text[i]
    else:
        text = bytearray(mutate_bytes(bytes(text), rng, count))
    try:
        header = json.loads(text.decode())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return rewrap(header, box.sections) if isinstance(header, dict) else None


def _nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every node in a JSON tree (the root excluded)."""
    out = []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        out.append(path + (key,))
        out += _nodes(child, path + (key,))
    return out


def mutate_header(data: bytes, rng: random.Random, count: int = 1) -> bytes | None:
    """Structural edits: a node replaced by a hostile value or deleted; CRCs valid."""
    box = bitstream.read(data)
    return rewrap(_mutate_tree(box.header, rng, count), box.sections)


def _mutate_tree(tree: dict, rng: random.Random, count: int) -> dict:
    """A copy of a JSON tree with `count` nodes replaced by hostile values or deleted."""
    tree = copy.deepcopy(tree)
    for _ in range(count):
        nodes = _nodes(tree)
        if not nodes:
            break
        path = rng.choice(nodes)
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.15:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
    return tree


MUTATORS = {"raw": mutate_bytes, "crc-fixed": mutate_section, "header-text": mutate_header_text, "header-json": mutate_header}


def seed_file(signal, model: str, params: int, prune: float = 0.0) -> bytes:
    """A real `.inr` file from a 2-step fit (valid in every byte, cheap to make): the seed
    that mutators and the corpus start from."""
    import torch

    from inr.export.compress import ExportOptions, encode_signal
    from inr.fit import FitConfig
    from inr.pipeline import FitOptions

    opts = FitOptions(model=model, params=params, batch_size=2, fit=FitConfig(steps=2))
    return encode_signal(signal, opts, ExportOptions(prune=prune), torch.device("cpu")).data


# ------------------------------------------------------------------ the regression corpus
@dataclass(frozen=True)
class Case:
    """A named hostile edit of a valid file of `model`'s family ("any": every family).
    `edits` are (path, value) pairs; the value `DELETE` removes the key. `part` is the
    `BitstreamError.part` that must refuse the result."""

    label: str
    model: str
    edits: tuple[tuple[tuple, Any], ...]
    part: str


DELETE = object()
T0 = ("tensors", 0)


def _c(label: str, model: str, part: str, *edits: tuple[tuple, Any]) -> Case:
    return Case(label, model, edits, part)


CORPUS: tuple[Case, ...] = (
    # wrong JSON types
    _c("tensor-name-list", "rows", "header", (T0 + ("name",), ["weight"])),
    _c("tensor-name-dict", "rows", "header", (T0 + ("name",), {"a": 1})),
    _c("tensors-int", "any", "header", (("tensors",), 7)),
    _c("tensor-entry-int", "rows", "header", (T0, 7)),
    _c("tensor-shape-string", "rows", "header", (T0 + ("shape",), "3x3")),
    _c("tensor-shape-float", "rows", "header", (T0 + ("shape",), [1.5, 2])),
    _c("tensor-bits-string", "rows", "header", (T0 + ("bits",), "8")),
    _c("tensor-bits-bool", "rows", "header", (T0 + ("bits",), True)),
    _c("tensor-bits-huge", "rows", "limits", (T0 + ("bits",), 99)),
    _c("tensor-pruned-string", "rows", "header", (T0 + ("pruned",), "yes")),
    _c("tensor-coder-int", "rows", "header", (T0 + ("coder",), 5)),
    _c("tensor-missing", "rows", "header", (("tensors",), [])),
    _c("tensor-renamed", "rows", "header", (T0 + ("name",), "not.a.parameter")),
    _c("tensor-reshaped", "rows", "header", (T0 + ("shape",), [1, 1])),
    _c("tensors-too-many", "any", "limits", (("tensors",), [{"name": "x"}] * 5000)),
    _c("weights-unknown", "any", "header", (("weights",), "bytes")),
    _c("weights-int", "any", "header", (("weights",), 1)),
    _c("steps-listing-tensors", "any", "header", (("weights",), "steps"), (("tensors",), [{"name": "x", "shape": [1], "bits": 8, "pruned": False, "coder": "laplace", "bytes": 1}])),
    _c("model-list", "any", "header", (("model",), ["siren"])),
    _c("model-unknown", "any", "header", (("model",), "nosuch")),
    _c("config-list", "any", "header", (("config",), [])),
    _c("config-unknown-field", "any", "header", (("config", "bogus"), 1)),
    _c("signal-string", "any", "header", (("signal",), "video")),
    _c("signal-kind-unknown", "any", "header", (("signal", "kind"), "hologram")),
    _c("signal-shape-string", "any", "header", (("signal", "shape"), "2x32x32x3")),
    _c("signal-fps-negative", "hnerv", "header", (("signal", "fps"), -1)),
    _c("signal-fps-nan", "hnerv", "header", (("signal", "fps"), float("nan"))),
    # HNeRV's embeddings are its last stored tensor
    _c("embeddings-missing", "hnerv", "header", (("tensors", -1), DELETE)),
    _c("embeddings-reshaped", "hnerv", "header", (("tensors", -1, "shape"), [1, 1, 1, 1])),
    _c("embeddings-bits-huge", "hnerv", "limits", (("tensors", -1, "bits"), 99)),
    # config values out of range
    _c("siren-layers-3000", "siren", "limits", (("config", "layers"), 3000)),
    _c("siren-layers-2^32", "siren", "limits", (("config", "layers"), 2**32)),
    _c("siren-layers-float", "siren", "header", (("config", "layers"), 2.5)),
    _c("siren-layers-bool", "siren", "header", (("config", "layers"), True)),
    _c("siren-layers-null", "siren", "header", (("config", "layers"), None)),
    _c("siren-w0--1e308", "siren", "limits", (("config", "w0"), -1e308)),
    _c("siren-w0-nan", "siren", "header", (("config", "w0"), float("nan"))),
    _c("siren-w0-inf", "siren", "header", (("config", "w0"), float("inf"))),
    _c("siren-hidden-2^40", "siren", "limits", (("config", "hidden"), 2**40)),
    _c("siren-hidden-2^24", "siren", "limits", (("config", "hidden"), 2**24)),  # in range; 10^15 parameters
    _c("siren-hidden-16384", "siren", "limits", (("config", "hidden"), 16384)),  # in range; 800 M parameters
    _c("siren-in-dim-3", "siren", "header", (("config", "in_dim"), 3)),  # in range; wrong for an image
    _c("siren-out-dim-1", "siren", "header", (("config", "out_dim"), 1)),
    _c("hnerv-enc-blocks-1000", "hnerv", "limits", (("config", "enc_blocks"), 1000)),
    _c("hnerv-enc-blocks-2^63", "hnerv", "limits", (("config", "enc_blocks"), 2**63)),
    _c("hnerv-enc-dim-65536", "hnerv", "limits", (("config", "enc_dim"), 65536)),
    # fit-time-only encoder in range but far over the parameter limit: counted though never built
    _c("hnerv-encoder-huge", "hnerv", "limits", (("config", "enc_dim"), 1024), (("config", "enc_blocks"), 8)),
    _c("hnerv-strides-long", "hnerv", "header", (("config", "strides"), [2] * 1000)),
    _c("hnerv-strides-zero", "hnerv", "limits", (("config", "strides"), [0])),
    _c("hnerv-ks-string", "hnerv", "header", (("config", "ks"), "1_5")),
    _c("hnerv-frames-huge", "hnerv", "limits", (("config", "frames"), 10**9)),
    _c("hnerv-pad-smaller", "hnerv", "header", (("config", "pad_height"), 8)),
    # signal shape vs model config, and output size
    _c("hnerv-shape-taller", "hnerv", "header", (("signal", "shape"), [2, 64, 32, 3])),
    _c("hnerv-shape-more-frames", "hnerv", "header", (("signal", "shape"), [3, 32, 32, 3])),
    _c("hnerv-shape-rank", "hnerv", "header", (("signal", "shape"), [2, 32, 32])),
    _c("hnerv-shape-as-image", "hnerv", "header", (("signal", "kind"), "image"), (("signal", "shape"), [32, 32, 3])),
    _c("siren-shape-channels", "siren", "header", (("signal", "shape"), [32, 32, 1])),
    _c("siren-2^31-pixels", "siren", "limits", (("signal", "shape"), [32768, 65536, 3])),
    _c("siren-side", "siren", "limits", (("signal", "shape"), [1, 46341, 3])),
    _c("video-2^31-pixels", "hnerv", "limits", (("signal", "shape"), [100_000, 16384, 16384, 3])),
    # SHACIRA's hash-latent records (header key `hash_latents`, section HLAT)
    _c("hash-latents-missing", "shacira", "header", (("hash_latents",), DELETE)),
    _c("hash-latents-empty", "shacira", "header", (("hash_latents",), [])),
    _c("hash-latents-dict", "shacira", "header", (("hash_latents",), {"level": 0})),
    _c("hash-latents-entry-int", "shacira", "header", (("hash_latents", 0), 7)),
    _c("hash-latents-reshaped", "shacira", "header", (("hash_latents", 0, "shape"), [1, 2])),
    _c("hash-latents-min-string", "shacira", "header", (("hash_latents", 0, "min"), "0")),
    _c("hash-latents-min-bool", "shacira", "header", (("hash_latents", 0, "min"), False)),
    _c("hash-latents-max-huge", "shacira", "header", (("hash_latents", 0, "max"), 2**40)),
    _c("hash-latents-min-above-max", "shacira", "header", (("hash_latents", 0, "min"), 1), (("hash_latents", 0, "max"), 0)),
    _c("shacira-table-2^27", "shacira", "limits", (("config", "table_size"), 2**27)),
)


def apply(header: dict, edits: tuple[tuple[tuple, Any], ...]) -> dict | None:
    """A copy of `header` with the edits applied; None if a path does not exist in it."""
    out = copy.deepcopy(header)
    for path, value in edits:
        parent = out
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value is DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            return None
    return out


def corpus(data: bytes, model: str) -> dict[str, tuple[bytes, str]]:
    """label -> (hostile file, expected part) for every case that applies to a valid file of
    `model` ("rows": the cases of a header that lists its tensors, the per-row scheme)."""
    box = bitstream.read(data)
    scheme = schema.weight_scheme(box.header)
    out = {}
    for case in CORPUS:
        if case.model not in ("any", model, scheme):
            continue
        header = apply(box.header, case.edits)
        forged = rewrap(header, box.sections) if header is not None else None
        if forged is not None:
            out[case.label] = (forged, case.part)
    if "QPRM" in box.sections:
        sections = dict(box.sections)
        sections["QPRM"] = sections["QPRM"][:-2]
        out["qprm-short"] = (bitstream.write(box.header, sections), "payload")
    for tag in ("LATS", "HLAT", "NETW"):  # the ANS streams: whole 32-bit words, all read
        if tag in box.sections:
            sections = dict(box.sections)
            sections[tag] += b"\0\0"
            out[f"{tag.lower()}-half-word"] = (bitstream.write(box.header, sections), "payload")
            del sections[tag]
            out[f"{tag.lower()}-missing"] = (bitstream.write(box.header, sections), "payload")
    return out


# ------------------------------------------------------------------ GOP files (format version 2)
GOP_CORPUS: tuple[Case, ...] = (
    _c("gop-index-missing-gops", "gop", "header", (("gops",), DELETE)),
    _c("gop-index-gops-dict", "gop", "header", (("gops",), {})),
    _c("gop-index-model-list", "gop", "header", (("model",), ["hnerv"])),
    _c("gop-signal-image", "gop", "header", (("signal", "kind"), "image")),
    _c("gop-signal-side", "gop", "limits", (("signal", "shape", 1), 40000)),
    _c("gop-entry-int", "gop", "header", (("gops", 0), 7)),
    _c("gop-start-gap", "gop", "header", (("gops", 1, "start"), 3)),
    _c("gop-start-string", "gop", "header", (("gops", 1, "start"), "2")),
    _c("gop-frames-zero", "gop", "limits", (("gops", 0, "frames"), 0)),
    _c("gop-frames-bool", "gop", "header", (("gops", 0, "frames"), True)),
    _c("gop-frames-sum", "gop", "header", (("signal", "shape", 0), 5)),
    _c("gop-bytes-huge", "gop", "limits", (("gops", 0, "bytes"), 2**40)),
    # frames and sizes consistent in the index but not with the GOPs' own headers
    _c("gop-payload-height", "gop", "header", (("signal", "shape", 1), 16)),
    _c("gop-payload-frames", "gop", "header", (("gops", 0, "frames"), 1), (("gops", 1, "start"), 1), (("gops", 1, "frames"), 3)),
)


def split_gop_file(data: bytes) -> tuple[int, dict, bytes]:
    """(GOP count, index JSON, payload bytes) of a valid version-2 file."""
    from inr.export.gop import VERSION

    count, index_len, crc, flags = bitstream.read_preamble(data, VERSION)
    start = bitstream.PREAMBLE.size
    return count, bitstream.decode_header(data[start : start + index_len], crc, flags), data[start + index_len :]


def rewrap_gop(index: dict, count: int, payload: bytes) -> bytes:
    """A version-2 file with a valid index CRC around whatever index, count and payloads."""
    import zlib

    from inr.export.gop import VERSION

    hdr = bitstream.encode_header(index)
    return bitstream.PREAMBLE.pack(bitstream.MAGIC, VERSION, bitstream.HEADER_FLAGS, count, len(hdr), zlib.crc32(hdr)) + hdr + payload


def gop_corpus(data: bytes) -> dict[str, tuple[bytes, str]]:
    """label -> (hostile GOP file, expected part), from a valid 2-GOP file of 2-frame GOPs."""
    count, index, payload = split_gop_file(data)
    out = {}
    for case in GOP_CORPUS:
        edited = apply(index, case.edits)
        if edited is not None:
            out[case.label] = (rewrap_gop(edited, count, payload), case.part)
    out["gop-count-more"] = (rewrap_gop(index, count + 1, payload), "header")
    out["gop-count-zero"] = (rewrap_gop(index, 0, payload), "limits")
    out["gop-payload-truncated"] = (rewrap_gop(index, count, payload[:-3]), "container")
    out["gop-trailing-byte"] = (rewrap_gop(index, count, payload + b"\0"), "container")
    shifted = apply(index, ((("gops", 0, "bytes"), index["gops"][0]["bytes"] - 1), (("gops", 1, "bytes"), index["gops"][1]["bytes"] + 1)))
    out["gop-boundary-shifted"] = (rewrap_gop(shifted, count, payload), "container")
    return out


def mutate_gop_index(data: bytes, rng: random.Random, count: int = 1) -> bytes:
    """Structural edits of a GOP file's index (as `mutate_header` does to a header); CRC valid."""
    n, index, payload = split_gop_file(data)
    return rewrap_gop(_mutate_tree(index, rng, count), n, payload)
