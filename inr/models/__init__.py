"""INR models: the registry, the representation interface every family implements, the families."""
from inr.models.registry import (
    ModelSpec,
    OptimDefaults,
    all_specs,
    config_from_dict,
    config_to_dict,
    count_params,
    get_spec,
    register,
)
from inr.models.representation import CoordinateRepresentation, FrameRepresentation, Representation
from inr.models.sizing import parse_param_budget, size_to_budget

__all__ = [
    "CoordinateRepresentation",
    "FrameRepresentation",
    "ModelSpec",
    "OptimDefaults",
    "Representation",
    "all_specs",
    "config_from_dict",
    "config_to_dict",
    "count_params",
    "get_spec",
    "parse_param_budget",
    "register",
    "size_to_budget",
]
