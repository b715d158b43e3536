"""Fuzzing the reader: mutated files raise BitstreamError and nothing else, quickly."""
from __future__ import annotations

import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inr.bitstream import BitstreamError
from inr.export.codec import decode_model
from inr.export.compress import ExportOptions, encode_signal
from inr.fit import FitConfig
from inr.pipeline import FitOptions
from inr.signals import video_signal


@pytest.fixture(scope="module")
def valid_file(tiny_clip) -> bytes:
    sig = video_signal(tiny_clip[:2, :32, :32])
    opts = FitOptions(model="hnerv", params=6_000, batch_size=2, fit=FitConfig(steps=2))
    return encode_signal(sig, opts, ExportOptions(prune=0.2), torch.device("cpu")).data


def _decode(data: bytes) -> None:
    t0 = time.perf_counter()
    try:
        decode_model(data)
    except BitstreamError:
        pass
    assert time.perf_counter() - t0 < 5.0


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


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_files_raise_bitstream_error(valid_file, mutations):
    data = _mutate(bytearray(valid_file), mutations)
    if bytes(data) == valid_file:
        return
    _decode(bytes(data))


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=0, max_size=512))
def test_random_bytes_raise_bitstream_error(blob):
    _decode(b"INRC" + blob if len(blob) % 2 else blob)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(["QPRM", "MASK", "WGTS", "EMBD", "header"]), st.lists(mutation, min_size=1, max_size=3))
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
        forged = bitstream.write(header, box.sections)
    else:
        sections = dict(box.sections)
        sections[target] = bytes(data)
        forged = bitstream.write(box.header, sections)
    _decode(forged)
