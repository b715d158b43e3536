"""INR models and their registry."""
from inr.models.registry import (
    ModelSpec,
    OptimDefaults,
    all_specs,
    build,
    config_from_dict,
    config_to_dict,
    count_params,
    get_spec,
)
from inr.models.sizing import parse_param_budget, size_to_budget

__all__ = [
    "ModelSpec",
    "OptimDefaults",
    "all_specs",
    "build",
    "config_from_dict",
    "config_to_dict",
    "count_params",
    "get_spec",
    "parse_param_budget",
    "size_to_budget",
]
