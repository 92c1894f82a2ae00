"""Alignment through the learning framework's Trainer: checkpoints, exact resume and torchrun for spaces.

The Trainer optimises any module whose forward(batch) returns a loss (`computes_loss`). Here that
module is `AlignObjective`: the space's heads plus one loss module per edge (own temperature each),
summing the per-edge losses as bind.py does. The data set is `PlannedBatches`, whose items are
whole batches, not pairs: alignment batches must be composed (one pair per group per batch so no
positive acts as a negative, optional hard-negative batches of near neighbours), and the plan is a
pure function of (seed, epoch), so a run stopped at step N and resumed follows the same batches.

Under torchrun each rank takes different planned batches (the Trainer's DistributedSampler over
batch items); DDP averages the gradients, so each rank's negatives are its own batch's pairs.

    edges = [AlignEdge("audio", "text", Edge(audio, words, groups=digits))]
    result = train_edges(edges, AlignConfig(dim=64), out="run")          # run/checkpoint, run/metrics.jsonl
    result = train_edges(edges, AlignConfig(dim=64), out="run", resume=True)  # continues exactly
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..training.config import Config, DataConfig, ModelConfig, TrainConfig
from ..training.distributed import DistContext
from ..training.trainer import METRICS_FILE, Trainer, seed_everything
from .bind import Edge, build_bound_space
from .losses import make_loss
from .heads import Space
from .batching import group_batches, hard_batches, unique_mask
from .train import AlignConfig, AlignResult


@dataclass
class AlignEdge:
    """Paired features feeding two heads: `left` head reads edge.left, `right` head reads edge.right."""

    left: str
    right: str
    edge: Edge

    @property
    def name(self) -> str:
        return f"{self.left}--{self.right}"


def checked_edges(edges: list[AlignEdge]) -> list[AlignEdge]:
    if not edges:
        raise ConfigError("edges: need at least one edge of paired features")
    out = []
    for number, item in enumerate(edges):
        if item.left == item.right:
            raise ConfigError(f"edges[{number}]: the two sides feed the same head {item.left!r}")
        out.append(AlignEdge(item.left, item.right, item.edge.checked((item.left, item.right))))
    return out


def head_dims(edges: list[AlignEdge]) -> dict[str, int]:
    dims: dict[str, int] = {}
    for item in edges:
        for head, features in ((item.left, item.edge.left), (item.right, item.edge.right)):
            if dims.setdefault(head, features.shape[1]) != features.shape[1]:
                raise ConfigError(f"head {head!r}: edges disagree on its feature dim ({dims[head]} vs {features.shape[1]})")
    return dims


class PlannedBatches(Dataset):
    """Item i of an epoch = step i's batch from every edge (indices + features + presence masks).

    An epoch is as many steps as the largest edge needs; a smaller edge continues into fresh
    permutations. A hard-negative plan can yield more batches than that (groups repeat): the extra
    ones wait for the next epoch's fresh plan, so every epoch has the same number of steps.
    """

    def __init__(self, edges: list[AlignEdge], batch_size: int, seed: int = 0, hard_negatives: bool = False):
        self.edges, self.batch_size, self.seed, self.hard_negatives = edges, batch_size, seed, hard_negatives
        self.steps = max(math.ceil(len(item.edge.left) / batch_size) for item in edges)
        self.tensors = [(torch.from_numpy(item.edge.left), torch.from_numpy(item.edge.right)) for item in edges]
        self.plan: list[list[np.ndarray]] = []
        self.set_epoch(0)

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.plan = [self._plan(number, epoch) for number in range(len(self.edges))]

    def _plan(self, number: int, epoch: int) -> list[np.ndarray]:
        edge = self.edges[number].edge
        rng = np.random.default_rng([self.seed, epoch, number])
        batches: list[np.ndarray] = []
        while len(batches) < self.steps:
            order = rng.permutation(len(edge.left))
            planned = (hard_batches(order, edge.groups, self.batch_size, edge.left, rng) if self.hard_negatives
                       else group_batches(order, edge.groups, self.batch_size))
            batches.extend(b for b in planned if len(b) >= 2)
        return batches[:self.steps]

    def __getitem__(self, step: int) -> dict:
        parts, size = [], 0
        for number, item in enumerate(self.edges):
            batch = self.plan[number][step]
            left, right = self.tensors[number]
            index = torch.from_numpy(batch)
            unique = torch.from_numpy(unique_mask(batch, item.edge.groups))
            parts.append({"left": left[index], "right": right[index],
                          "left_present": torch.from_numpy(item.edge.left_present[batch]) & unique,
                          "right_present": torch.from_numpy(item.edge.right_present[batch])})
            size += len(batch)
        return {"edges": parts, "size": size}


def one_batch(items: list[dict]) -> dict:
    """Collate for PlannedBatches: the loader's batch size is 1 item = 1 planned batch."""
    return items[0]


class AlignObjective(nn.Module):
    """The space's heads + one loss per edge; forward(batch) = the summed per-edge losses."""

    computes_loss = True

    def __init__(self, space: Space, edges: list[AlignEdge], config: AlignConfig, frozen: tuple[str, ...] = ()):
        super().__init__()
        self.space = space
        self.sides = [(item.left, item.right) for item in edges]
        self.losses = nn.ModuleList(make_loss(config.loss, **config.loss_options) for _ in edges)
        self.frozen = tuple(frozen)
        for name in self.frozen:
            space.heads[name].requires_grad_(False)

    def train(self, mode: bool = True) -> "AlignObjective":
        super().train(mode)
        for name in self.frozen:  # a frozen head with dropout must not change between steps
            self.space.heads[name].eval()
        return self

    def forward(self, batch: dict) -> Tensor:
        total = None
        for (left, right), loss_module, part in zip(self.sides, self.losses, batch["edges"]):
            loss = loss_module(self.space(left, part["left"]), self.space(right, part["right"]),
                               part["left_present"], part["right_present"])
            total = loss if total is None else total + loss
        return total


def trainer_config(config: AlignConfig) -> Config:
    """The Trainer's run config for an alignment: one planned batch per loader item, no clipping
    (as train_space), the schedule and optimiser settings of AlignConfig."""
    train = TrainConfig(epochs=config.epochs, batch_size=1, lr=config.lr, weight_decay=config.weight_decay,
                        warmup_steps=config.warmup_steps, min_lr_ratio=config.min_lr_ratio, grad_clip=0.0,
                        seed=config.seed, metric="loss", progress=False)
    return Config(data=DataConfig(), model=ModelConfig(), train=train, tasks=[])


def build_space(edges: list[AlignEdge], config: AlignConfig, identity: tuple[str, ...] = ()) -> Space:
    seed_everything(config.seed)  # before building: the heads' initial weights repeat too
    space = build_bound_space(head_dims(edges), config, tuple(identity))
    space.meta["edges"] = [item.name for item in edges]
    return space


def train_edges(edges: list[AlignEdge], config: AlignConfig | None = None, out: str | Path | None = None, *,
                frozen: tuple[str, ...] = (), identity: tuple[str, ...] = (), resume: bool = False,
                context: DistContext | None = None, stop_after_steps: int | None = None) -> AlignResult:
    """Train a space on one or more edges with the Trainer; checkpoints and metrics.jsonl go to `out`.

    resume: continue the run in `out` exactly where it stopped (its checkpoint folder).
    stop_after_steps: stop (with a checkpoint) after that many optimizer steps, as an interruption would.
    """
    config = config or AlignConfig()
    config.validate()
    edges = checked_edges(edges)
    dims = head_dims(edges)
    for name in (*frozen, *identity):
        if name not in dims:
            raise ConfigError(f"{name!r} is frozen/identity but no edge feeds that head (heads: {sorted(dims)})")
    if set(frozen) >= set(dims):
        raise ConfigError("frozen: every head is frozen, nothing would train")
    if resume and out is None:
        raise ConfigError("--resume needs the run folder (--out)")
    context = context or DistContext()
    if out is not None and context.is_main and not resume:
        (Path(out) / METRICS_FILE).unlink(missing_ok=True)  # a fresh run must not append to an old log
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        space = build_space(edges, config, identity)
        objective = AlignObjective(space, edges, config, frozen)
        data = PlannedBatches(edges, config.batch_size, config.seed, config.hard_negatives)
        trainer = Trainer(trainer_config(config), objective, data, None, one_batch, out=out, context=context)
        started = time.perf_counter()
        summary = trainer.fit(resume=resume, stop_after_steps=stop_after_steps)
        seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous_threads)
    space.eval()
    history = _history(out) if out is not None and context.is_main else []
    return AlignResult(space, objective.losses, history, seconds, summary["samples"] / max(seconds, 1e-9), summary)


def _history(out: str | Path) -> list[float]:
    path = Path(out) / METRICS_FILE
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [float(r["train_loss"]) for r in records if r.get("train_loss") is not None]


__all__ = ["AlignEdge", "AlignObjective", "PlannedBatches", "build_space", "train_edges", "trainer_config"]
