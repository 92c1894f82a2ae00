"""Checkpoints as safetensors + JSON only: weights, optimizer, scheduler and every RNG state.

Nothing is pickled, so a checkpoint from anywhere is safe to open. Tensors (weights, optimizer
moments, RNG states) go to .safetensors under flat dotted names; everything else (step counts,
hyper-parameters, early-stopping state) goes to state.json. Restoring all of it makes a resumed run
bit-for-bit the run that was never stopped.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..errors import ReadError

MODEL_FILE, STATE_FILE, STATE_JSON = "model.safetensors", "state.safetensors", "state.json"
AVERAGED_FILE = "averaged.safetensors"  # the moving average of the weights, when training keeps one


def save_weights(model: nn.Module, path: Path) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path))


def load_weights(model: nn.Module, path: Path, strict: bool = True) -> None:
    if not path.is_file():
        raise ReadError(path, "no weights file")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ReadError(path, f"not a valid safetensors file ({exc})") from exc
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if strict and (missing or unexpected):
        raise ReadError(path, f"weights do not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Python, NumPy and torch generator states as tensors plus their scalar parts."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.python": torch.tensor(words, dtype=torch.int64),
               "rng.numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64))}
    return tensors, {"python": [version, gauss], "numpy": [name, int(pos), int(has_gauss), float(cached)]}


def set_rng_state(tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    version, gauss = extra["python"]
    random.setstate((version, tuple(int(w) for w in tensors["rng.python"].tolist()), gauss))
    name, pos, has_gauss, cached = extra["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    progress: dict[str, Any], averaged: nn.Module | None = None) -> None:
    """Write model + state (+ the averaged weights) atomically: into a temporary folder, then swapped in by rename."""
    folder = Path(folder)
    temporary = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_weights(model, temporary / MODEL_FILE)
    if averaged is not None:
        save_weights(averaged, temporary / AVERAGED_FILE)
    optim_tensors, optim_meta = _flatten_optimizer(optimizer.state_dict())
    rng_tensors, rng_meta = rng_state()
    save_file({**optim_tensors, **rng_tensors}, str(temporary / STATE_FILE))
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    meta = {"progress": progress, "optimizer": optim_meta, "scheduler": scheduler_state, "rng": rng_meta}
    (temporary / STATE_JSON).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(temporary, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    averaged: AveragedModel | None = None) -> dict[str, Any]:
    """Restore everything `save_checkpoint` wrote; returns the saved progress dict.

    A run that began without a weight average and resumes with one (train.ema turned on for the
    rest of the run) starts the average from the resumed weights, with a warning."""
    folder = Path(folder)
    for name in (MODEL_FILE, STATE_FILE, STATE_JSON):
        if not (folder / name).is_file():
            raise ReadError(folder / name, "checkpoint file missing; cannot resume")
    load_weights(model, folder / MODEL_FILE)
    if averaged is not None and (folder / AVERAGED_FILE).is_file():
        load_weights(averaged, folder / AVERAGED_FILE)
    elif averaged is not None:
        warnings.warn(f"{folder}: the checkpoint holds no weight average (the run began without train.ema); "
                      "the average starts from the resumed weights", stacklevel=2)
        averaged.module.load_state_dict(model.state_dict())
        averaged.n_averaged.zero_()
    try:
        meta = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / STATE_FILE))
    except (ValueError, OSError) as exc:
        raise ReadError(folder, f"unreadable checkpoint state ({exc})") from exc
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    scheduler.load_state_dict({**scheduler.state_dict(), **meta["scheduler"]})
    set_rng_state(tensors, meta["rng"])
    return meta["progress"]
