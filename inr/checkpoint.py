"""Checkpoints: a directory with `config.json`, `model.safetensors`, `training.safetensors`.

No pickles: configs are JSON, tensors are safetensors, so a checkpoint from an untrusted
source cannot run code. Directories are written under a temporary name and renamed into
place, so an interrupted save never leaves a half checkpoint that looks complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from inr.errors import InrError
from inr.models.registry import ModelSpec, config_from_dict, config_to_dict, get_spec

FORMAT = "inr-checkpoint"
EXTRA = "extra."
VERSION = 1


def atomic_dir(target: Path, fill) -> None:
    """Create `target` by filling a sibling temp dir then renaming it over the old one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save(path: Path, spec: ModelSpec, cfg, model: nn.Module, meta: dict, trainer=None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # beyond the state dict: e.g. HNeRV's per-frame embeddings
    state.update({f"{EXTRA}{k}": v.detach().cpu().contiguous() for k, v in model.checkpoint_tensors().items()})
    header = {"format": FORMAT, "version": VERSION, "model": spec.name, "config": config_to_dict(cfg), "meta": meta}
    training = None
    if trainer is not None:
        tensors, info = trainer.training_state()
        header["training"] = info
        training = tensors

    def fill(tmp: Path) -> None:
        save_file(state, str(tmp / "model.safetensors"))
        if training is not None:
            save_file(training, str(tmp / "training.safetensors"))
        (tmp / "config.json").write_text(json.dumps(header, indent=2))

    atomic_dir(path, fill)


def load_header(path: Path) -> dict:
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise InrError(f"{path}: not a checkpoint directory (no config.json)")
    try:
        header = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise InrError(f"{cfg_file}: invalid JSON ({exc.msg})") from None
    if header.get("format") != FORMAT:
        raise InrError(f"{path}: not an inr checkpoint")
    return header


def load(path: Path, device: torch.device | str = "cpu") -> tuple[ModelSpec, object, nn.Module, dict]:
    """Rebuild the model from a checkpoint: (spec, config, model, header)."""
    header = load_header(path)
    spec = get_spec(header["model"])
    cfg = config_from_dict(spec, header["config"])
    model = spec.model_cls(cfg)
    weights = load_file(str(Path(path) / "model.safetensors"))
    extra = {k[len(EXTRA) :]: weights.pop(k) for k in list(weights) if k.startswith(EXTRA)}
    model.load_state_dict(weights)
    if extra:
        model.load_checkpoint_tensors({k: v.to(device) for k, v in extra.items()})
    return spec, cfg, model.to(device), header


def load_training(path: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    f = Path(path) / "training.safetensors"
    header = load_header(path)
    if not f.is_file() or "training" not in header:
        return None
    return load_file(str(f)), header["training"]
