"""Global magnitude pruning: one threshold across every prunable weight of the model.

Only weight matrices/kernels (ndim >= 2) are pruned; biases and embeddings are left alone
(small, and pruning them costs quality for almost no bits).
"""
from __future__ import annotations

import torch
from torch import nn


def prunable(name: str, p: torch.Tensor) -> bool:
    return p.ndim >= 2 and name.endswith("weight")


def global_magnitude_masks(named: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Masks (1 = keep) removing the `ratio` smallest-magnitude weights across all tensors."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"prune ratio must be in [0, 1), got {ratio}")
    targets = {n: p.detach() for n, p in named.items() if prunable(n, p)}
    if ratio == 0 or not targets:
        return {}
    mags = torch.cat([p.abs().flatten() for p in targets.values()])
    k = int(ratio * mags.numel())
    if k == 0:
        return {}
    threshold = torch.kthvalue(mags.float().cpu(), k).values
    return {n: (p.abs() > threshold.to(p.device)).to(p.dtype) for n, p in targets.items()}


def module_and_attr(root: nn.Module, name: str) -> tuple[nn.Module, str]:
    parts = name.split(".")
    mod = root
    for p in parts[:-1]:
        mod = getattr(mod, p)
    return mod, parts[-1]
