"""Train projection heads on paired frozen features with any alignment loss.

A small loop, kept for quick fits (cross-validation folds, benchmarks); `sensorium align` trains
through the general Trainer instead (trainer_bridge.py: checkpoints, exact resume, torchrun) with
the same batch planning. Here the whole data set is a pair of feature matrices in memory,
an epoch is a few batches, and the batch composition itself matters (one caption per photo per
batch so no positive shows up as a negative; optional hard-negative batches of near neighbours).
AdamW + linear warm-up/cosine (the training package's schedule), seeded, so runs repeat exactly.
The result is saved with `Space.save` (safetensors + JSON), like the framework's checkpoints.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..errors import ConfigError
from ..training.schedule import warmup_cosine
from ..training.trainer import seed_everything
from .losses import LOSSES, make_loss
from .batching import group_batches, hard_batches, unique_mask
from .heads import Space


@dataclass
class AlignConfig:
    dim: int = 256
    head: str = "linear"  # "linear" or "mlp"
    hidden: int | None = None
    dropout: float = 0.0
    loss: str = "infonce"  # infonce | siglip | triplet
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 5
    min_lr_ratio: float = 0.0
    seed: int = 0
    hard_negatives: bool = False  # batches built around near neighbours (harder negatives)
    loss_options: dict = field(default_factory=dict)
    threads: int | None = 1  # tiny matmuls: extra threads only spin against each other on a busy CPU

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"loss: {self.loss!r} is not one of {sorted(LOSSES)}")
        for name in ("dim", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError("batch_size: contrastive losses need at least 2 pairs per batch")


@dataclass
class AlignResult:
    space: Space
    loss_module: torch.nn.Module
    history: list[float]  # mean loss per epoch
    seconds: float
    pairs_per_second: float
    summary: dict = field(default_factory=dict)  # the Trainer's progress (step, epoch, interrupted), when it trained


def train_space(left: np.ndarray, right: np.ndarray, left_name: str = "image", right_name: str = "text",
                config: AlignConfig | None = None, groups: np.ndarray | None = None,
                left_present: np.ndarray | None = None, right_present: np.ndarray | None = None) -> AlignResult:
    """Learn heads so that left[i] and right[i] meet in the shared space.

    groups[i]: pairs with the same group (captions of one photo) never act as each other's negatives.
    left_present / right_present: False where that side is missing (its row is then ignored).
    """
    config = config or AlignConfig()
    config.validate()
    left, right = np.asarray(left, dtype=np.float32), np.asarray(right, dtype=np.float32)
    if len(left) != len(right):
        raise ConfigError(f"left has {len(left)} rows but right has {len(right)}")
    if len(left) < 2:
        raise ConfigError("need at least 2 pairs to train")
    n = len(left)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    left_present = np.ones(n, bool) if left_present is None else np.asarray(left_present, bool)
    right_present = np.ones(n, bool) if right_present is None else np.asarray(right_present, bool)

    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(left, right, left_name, right_name, config, groups, left_present, right_present)
    finally:
        torch.set_num_threads(previous_threads)


def _train(left, right, left_name, right_name, config, groups, left_present, right_present) -> AlignResult:
    n = len(left)
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    space = Space.build({left_name: left.shape[1], right_name: right.shape[1]}, config.dim, config.head,
                        config.hidden, config.dropout, meta={"train": asdict(config)})
    loss_module = make_loss(config.loss, **config.loss_options)
    params = list(space.parameters()) + [p for p in loss_module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-n // config.batch_size)
    scheduler = warmup_cosine(optimizer, config.warmup_steps, config.epochs * steps_per_epoch, config.min_lr_ratio)
    left_t, right_t = torch.from_numpy(left), torch.from_numpy(right)

    history, seen_pairs = [], 0
    start = time.perf_counter()
    space.train()
    for _ in range(config.epochs):
        order = rng.permutation(n)
        batches = (hard_batches(order, groups, config.batch_size, left, rng) if config.hard_negatives
                   else group_batches(order, groups, config.batch_size))
        losses = []
        for batch in batches:
            if len(batch) < 2:
                continue
            unique = torch.from_numpy(unique_mask(batch, groups))
            index = torch.from_numpy(batch)
            a = space(left_name, left_t[index])
            b = space(right_name, right_t[index])
            loss = loss_module(a, b, torch.from_numpy(left_present[batch]) & unique,
                               torch.from_numpy(right_present[batch]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            seen_pairs += len(batch)
        history.append(float(np.mean(losses)) if losses else float("nan"))
    seconds = time.perf_counter() - start
    space.eval()
    return AlignResult(space, loss_module, history, seconds, seen_pairs / max(seconds, 1e-9))
