"""Coordinate models: registry, parameter counts, SIREN initialisation."""
from __future__ import annotations

import math

import pytest
import torch

from inr.errors import InrError
from inr.models import all_specs, count_params, get_spec, parse_param_budget, size_to_budget
from inr.models.coordinate import Siren, SirenConfig
from inr.models.sizing import stored_params


def test_registry_lists_every_model():
    names = {s.name for s in all_specs()}
    assert {"siren", "poly", "ffn", "hashgrid", "nerv", "nervpp", "hnerv"} <= names
    with pytest.raises(InrError, match="unknown model"):
        get_spec("nope")


def test_siren_param_count_formula():
    cfg = SirenConfig(in_dim=2, out_dim=3, hidden=32, layers=2)
    want = (2 * 32 + 32) + 2 * (32 * 32 + 32) + (32 * 3 + 3)
    assert count_params(Siren(cfg)) == want == stored_params(get_spec("siren"), cfg)


def test_siren_init_follows_paper():
    torch.manual_seed(0)
    n = 256
    model = Siren(SirenConfig(in_dim=2, hidden=n, layers=4))
    first = model.body[0].linear.weight
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.45  # U(-1/in, 1/in), in = 2
    later = model.body[1].linear.weight
    bound = math.sqrt(6 / n) / 30
    assert later.abs().max() <= bound and later.abs().max() > 0.95 * bound
    # The point of the init (paper, Sec. 3.2): the first layer's output is arcsine-distributed
    # (variance 1/2), and every later pre-activation w0 (Wx + b) stays ~ N(0, 1) however deep
    # the network is, so sin of it keeps variance (1 - e^-2)/2 ~ 0.432 at every layer.
    h = torch.rand(20000, 2) * 2 - 1
    with torch.no_grad():
        for i, layer in enumerate(model.body):
            pre = layer.w0 * layer.linear(h)
            h = layer(h)
            if i == 0:
                assert abs(float(h.var()) - 0.5) < 0.02
            else:
                assert 0.85 < float(pre.std()) < 1.1, (i, float(pre.std()))
                assert abs(float(h.var()) - (1 - math.exp(-2)) / 2) < 0.04, (i, float(h.var()))


@pytest.mark.parametrize("text,value", [("0.75M", 750_000), ("300k", 300_000), ("120000", 120_000), ("1.5m", 1_500_000)])
def test_parse_param_budget(text, value):
    assert parse_param_budget(text) == value


@pytest.mark.parametrize("text", ["abc", "-3M", "0", ""])
def test_parse_param_budget_rejects(text):
    with pytest.raises(InrError):
        parse_param_budget(text)


@pytest.mark.parametrize("name", ["siren", "poly", "ffn", "hashgrid"])
def test_coordinate_models_size_to_budget(name):
    spec = get_spec(name)
    cfg = size_to_budget(spec, spec.config_cls(), 50_000)
    assert abs(stored_params(spec, cfg) - 50_000) <= 0.05 * 50_000
