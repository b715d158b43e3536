"""Fuzzing the reader: a mutated file decodes or raises exactly BitstreamError, with a
one-line message from the check that should refuse that kind of damage."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inr.bitstream import PARTS, BitstreamError
from inr.export.codec import decode_model
from inr.export.hostile import mutate_header


@pytest.fixture(scope="module")
def valid_file(hnerv_file) -> bytes:
    return hnerv_file


def _decode(data: bytes, parts: tuple[str, ...] = PARTS) -> None:
    """Decode; a refusal must be a BitstreamError (no subclass, no other type) from one of
    `parts`, with a short single-line message that is not a Python internal."""
    try:
        decode_model(data)
    except Exception as exc:
        assert type(exc) is BitstreamError, f"{type(exc).__name__}: {exc}"
        assert exc.part in parts, f"{exc.part}: {exc}"
        msg = str(exc)
        assert msg and "\n" not in msg and len(msg) < 300
        assert not any(s in msg for s in ("Traceback", "unhashable", "object is not", "NoneType")), msg


def test_valid_file_decodes(valid_file):
    decode_model(valid_file)


def _mutate(data: bytearray, mutations) -> bytearray:
    for kind, pos, val in mutations:
        if not data:
            break
        i = pos % len(data)
        if kind == "flip":
            data[i] ^= 1 << val
        elif kind == "truncate":
            data = data[:i]
        elif kind == "byte":
            data[i] = val
        elif kind == "insert":
            data.insert(i, val)
        else:
            del data[i]
    return data


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**9), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9), st.just(0)),
    st.tuples(st.just("byte"), st.integers(0, 10**9), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10**9), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**9), st.just(0)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_files_raise_bitstream_error(valid_file, mutations):
    data = _mutate(bytearray(valid_file), mutations)
    if bytes(data) == valid_file:
        return
    _decode(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=512))
def test_random_bytes_raise_bitstream_error(blob):
    _decode(b"INRC" + blob if len(blob) % 2 else blob)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(["QPRM", "MASK", "WGTS", "header"]), st.lists(mutation, min_size=1, max_size=3))
def test_mutations_behind_valid_crcs_reach_the_decoders(valid_file, target, mutations):
    """CRCs stop random damage early; re-wrapping with valid CRCs makes the entropy decoders
    and header validation face the garbage themselves. Decoding may succeed (garbage weights
    are still weights) but may not raise anything but BitstreamError, hang or over-allocate."""
    import json

    from inr import bitstream

    box = bitstream.read(valid_file)
    original = json.dumps(box.header).encode() if target == "header" else box.sections[target]
    data = _mutate(bytearray(original), mutations)
    if target == "header":
        try:
            header = json.loads(bytes(data).decode())
        except (ValueError, UnicodeDecodeError):
            return  # not JSON: the writer would never produce it, and read() covers bad JSON
        if not isinstance(header, dict):
            return
        try:
            forged = bitstream.write(header, box.sections)
        except BitstreamError:
            return  # header too large for the writer
        _decode(forged, ("header", "limits", "payload"))
    else:
        sections = dict(box.sections)
        sections[target] = bytes(data)
        _decode(bitstream.write(box.header, sections), ("payload",))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(1, 3))
def test_structural_header_edits_are_refused_by_the_schema(valid_file, seed, count):
    """Any JSON node replaced by a value of another type or a hostile size (or deleted),
    behind valid CRCs: the schema, never the code behind it, refuses what it must."""
    forged = mutate_header(valid_file, random.Random(seed), count)
    if forged is not None:
        _decode(forged, ("header", "limits", "payload"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(["HLAT", "NETW", "header"]), st.lists(mutation, min_size=1, max_size=3))
def test_hash_latent_mutations_behind_valid_crcs_reach_the_decoder(shacira_file, target, mutations):
    """SHACIRA's section HLAT (one ANS stream of the hash-grid latents) and its `hash_latents`
    header records, damaged behind valid CRCs: decoded, or refused with one BitstreamError."""
    from inr import bitstream

    box = bitstream.read(shacira_file)
    if target == "header":
        forged = mutate_header(shacira_file, random.Random(str(mutations)), len(mutations))
        if forged is not None:
            _decode(forged, ("header", "limits", "payload"))
        return
    sections = dict(box.sections)
    sections[target] = bytes(_mutate(bytearray(sections[target]), mutations))
    _decode(bitstream.write(box.header, sections), ("payload",))


def _decode_gops(data: bytes) -> None:
    """A GOP file (format version 2) decodes or is refused with one BitstreamError line."""
    import torch

    from inr.export.gop import decode_range

    try:
        for _ in decode_range(data, 0, 10**9, torch.device("cpu")):
            pass
    except Exception as exc:
        assert type(exc) is BitstreamError, f"{type(exc).__name__}: {exc}"
        assert exc.part in PARTS and "\n" not in str(exc) and len(str(exc)) < 300


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_gop_files_raise_bitstream_error(gop_file, mutations):
    _decode_gops(bytes(_mutate(bytearray(gop_file), mutations)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_structural_gop_index_edits_are_refused_by_the_index_check(gop_file, seed, count):
    """Hostile values anywhere in the GOP index (CRC valid) end in BitstreamError."""
    from inr.export.hostile import mutate_gop_index

    _decode_gops(mutate_gop_index(gop_file, random.Random(seed), count))
