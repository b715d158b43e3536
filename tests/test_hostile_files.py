"""Regression corpus of hostile `.inr` files (issue 12): each is refused by the check meant for
it, as one BitstreamError line, before anything is built (at the CLI, one line and exit 2:
test_cli_export.py)."""
from __future__ import annotations

import dataclasses
from typing import Optional

import pytest

from inr import bitstream
from inr.bitstream import BitstreamError
from inr.export import schema
from inr.export.codec import decode_model
from inr.export.hostile import CORPUS, corpus
from inr.models.registry import ModelSpec, OptimDefaults

FAMILIES = ("hnerv", "siren", "shacira")


@pytest.fixture(scope="module")
def files(hnerv_file, siren_file, shacira_file) -> dict[str, bytes]:
    return {"hnerv": hnerv_file, "siren": siren_file, "shacira": shacira_file}


def _refusal(data: bytes) -> BitstreamError:
    with pytest.raises(BitstreamError) as info:
        decode_model(data)
    exc = info.value
    assert type(exc) is BitstreamError
    assert "\n" not in str(exc) and len(str(exc)) < 300
    return exc


def test_every_corpus_case_applies_to_a_family(files):
    labels = set()
    for family in FAMILIES:
        labels |= set(corpus(files[family], family))
    assert {c.label for c in CORPUS} <= labels


@pytest.mark.parametrize("family", FAMILIES)
def test_corpus_is_refused_by_the_right_check(files, family):
    cases = corpus(files[family], family)
    wrong = {}
    for label, (data, part) in cases.items():
        exc = _refusal(data)
        if exc.part != part:
            wrong[label] = f"{exc.part}: {exc}"
    assert not wrong


@pytest.mark.parametrize("family", FAMILIES)
def test_valid_files_still_decode(files, family):
    spec, cfg, model, header = decode_model(files[family])
    assert spec.name == family
    assert model.training is False


def test_decoder_never_builds_fit_time_modules(hnerv_file):
    _, _, model, _ = decode_model(hnerv_file)
    assert model.encoder is None
    assert model.embeddings is not None


def test_fit_time_modules_count_towards_the_parameter_limit(hnerv_file):
    """An encoder the decoder never builds still makes a file over the limit hostile."""
    box = bitstream.read(hnerv_file)
    header = dict(box.header, config=dict(box.header["config"], enc_dim=1024, enc_blocks=8))
    exc = _refusal(bitstream.write(header, box.sections))
    assert exc.part == "limits" and "parameters" in str(exc)


def test_plan_reports_cost_within_limits(hnerv_file):
    plan = schema.check_header(bitstream.read(hnerv_file).header)
    assert plan.built_params > sum(map(_numel, plan.tensors.values()))  # the encoder is counted
    assert 0 < plan.flops <= schema.LIMITS["flops"]
    assert 0 < plan.largest_tensor_bytes <= schema.LIMITS["tensor_bytes"]


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def test_work_limit_refuses_a_heavy_render(siren_file, monkeypatch):
    """A small file asking for more work than the decoder allows is refused before rendering."""
    plan = schema.check_header(bitstream.read(siren_file).header)
    monkeypatch.setitem(schema.LIMITS, "flops", plan.flops / 2)
    exc = _refusal(siren_file)
    assert exc.part == "limits" and "FLOPs" in str(exc)


# ------------------------------------------------------------------ a new family's own limits
@dataclasses.dataclass
class _GridConfig:
    """Stands in for a model family the schema has never heard of."""

    levels: int = 4
    scale: float = 1.0
    name: str = "a"
    size: Optional[int] = None
    dims: tuple[int, ...] = (2, 2)

    LIMITS = {"levels": (1, 8), "scale": (0.5, 2.0), "name": ("a", "b")}

    def validate(self) -> None:
        if self.size is not None and self.size < self.levels:
            raise ValueError("size must be at least levels")


_SPEC = ModelSpec("grid-test", _GridConfig, object, ("image",), "test", OptimDefaults(lr=1e-3), lambda c, s: c, "levels")


@pytest.mark.parametrize(
    "data, part",
    [
        ({"levels": 9}, "limits"),
        ({"levels": 2.0}, "header"),
        ({"scale": 0.1}, "limits"),
        ({"scale": float("nan")}, "header"),
        ({"name": "c"}, "header"),
        ({"size": "big"}, "header"),
        ({"size": 2, "levels": 4}, "header"),  # the config's own validate()
        ({"dims": [2] * 9}, "header"),
        ({"dims": [70000]}, "limits"),  # no LIMITS entry: the default int range
        ({"extra": 1}, "header"),
    ],
)
def test_a_new_family_brings_its_own_limits(data, part):
    with pytest.raises(BitstreamError) as info:
        schema.check_config(_SPEC, data)
    assert info.value.part == part


def test_a_new_family_config_within_limits_passes():
    cfg = schema.check_config(_SPEC, {"levels": 8, "scale": 2.0, "name": "b", "size": None, "dims": [1, 2, 3]})
    assert cfg.levels == 8 and cfg.dims == (1, 2, 3)


# ------------------------------------------------------------------ GOP files (format version 2)
def _gop_refusal(data: bytes) -> BitstreamError:
    import torch

    from inr.export.gop import decode_range

    with pytest.raises(BitstreamError) as info:
        list(decode_range(data, 0, 10**9, torch.device("cpu")))
    exc = info.value
    assert type(exc) is BitstreamError
    assert "\n" not in str(exc) and len(str(exc)) < 300
    return exc


def test_gop_file_decodes_every_frame(gop_file, hnerv_file):
    import torch

    from inr.export.gop import decode_range

    frames = torch.cat(list(decode_range(gop_file, 0, 4, torch.device("cpu"))))
    _, _, model, header = decode_model(hnerv_file)
    one = model.render(header["signal"]["shape"], torch.device("cpu"))
    assert frames.shape == (4, 32, 32, 3)
    assert torch.equal(frames[:2], one) and torch.equal(frames[2:], one)


def test_gop_corpus_is_refused_by_the_right_check(gop_file):
    from inr.export.hostile import GOP_CORPUS, gop_corpus

    cases = gop_corpus(gop_file)
    assert {c.label for c in GOP_CORPUS} <= set(cases)
    wrong = {label: f"{exc.part}: {exc}" for label, (data, part) in cases.items() if (exc := _gop_refusal(data)).part != part}
    assert not wrong


def test_a_version_2_file_is_refused_by_the_single_file_decoder(gop_file):
    exc = _refusal(gop_file)
    assert "version 2" in str(exc)
