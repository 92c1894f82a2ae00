"""Binding many modalities through a hub (ImageBind, Girdhar et al. 2023).

Paired data rarely exists for every pair of modalities, but most modalities have pairs with one
hub (images: photos with captions, videos with sound ...). Training each edge (audio<->image,
image<->text) into the SAME heads makes the hub head shared, so audio and text land in one space
without ever seeing an audio<->text pair ("emergent" alignment).

Each step draws one batch from every edge and sums the edges' losses (each edge has its own loss
module, hence its own learned temperature). A head can be frozen, e.g. text kept as the identity
over MiniLM so the space stays anchored on the frozen text encoder, as ImageBind keeps its
image/text encoders fixed and aligns the other modalities to them.

    edges = {("audio", "image"): (audio_feats, image_feats), ("image", "text"): (image_feats, text_feats)}
    result = train_bound_space(edges, AlignConfig(dim=384), frozen=("text",), identity=("text",))
    result.space.embed("audio", clips) @ result.space.embed("text", words).T
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..training.schedule import warmup_cosine
from ..training.trainer import seed_everything
from .losses import make_loss
from .heads import ProjectionHead, Space
from .batching import group_batches, unique_mask
from .train import AlignConfig, AlignResult


@dataclass
class Edge:
    """Paired features of two modalities: row i of `left` goes with row i of `right`.

    groups[i]: pairs of one group (e.g. one digit) are never each other's negatives.
    left_present / right_present: False where that side is missing (the pair is then ignored).
    """

    left: np.ndarray
    right: np.ndarray
    groups: np.ndarray | None = None
    left_present: np.ndarray | None = None
    right_present: np.ndarray | None = None

    def checked(self, names: tuple[str, str]) -> "Edge":
        left, right = np.asarray(self.left, np.float32), np.asarray(self.right, np.float32)
        if left.ndim != 2 or right.ndim != 2:
            raise ConfigError(f"edge {names}: features must be 2-d (n, d), got {left.shape} and {right.shape}")
        n = len(left)
        if len(right) != n:
            raise ConfigError(f"edge {names}: {names[0]} has {n} rows but {names[1]} has {len(right)}")
        if n < 2:
            raise ConfigError(f"edge {names}: need at least 2 pairs to train")

        def column(values, default, what):
            out = default if values is None else np.asarray(values)
            if len(out) != n:
                raise ConfigError(f"edge {names}: {what} has {len(out)} rows, expected {n}")
            return out

        return Edge(left, right, column(self.groups, np.arange(n), "groups"),
                    column(self.left_present, np.ones(n, bool), "left_present").astype(bool),
                    column(self.right_present, np.ones(n, bool), "right_present").astype(bool))


EdgeData = Edge | tuple[np.ndarray, np.ndarray]


def identity_head(dim: int) -> ProjectionHead:
    """A linear head that starts as the identity (the space IS that modality's frozen space)."""
    head = ProjectionHead(dim, dim, "linear")
    with torch.no_grad():
        head.net.weight.copy_(torch.eye(dim))
        head.net.bias.zero_()
    return head


def _in_dims(edges: dict[tuple[str, str], Edge]) -> dict[str, int]:
    dims: dict[str, int] = {}
    for (a, b), edge in edges.items():
        for name, features in ((a, edge.left), (b, edge.right)):
            if dims.setdefault(name, features.shape[1]) != features.shape[1]:
                raise ConfigError(f"modality {name!r}: edges disagree on its feature dim "
                                  f"({dims[name]} vs {features.shape[1]})")
    return dims


def build_bound_space(in_dims: dict[str, int], config: AlignConfig, identity: tuple[str, ...] = ()) -> Space:
    heads = {}
    for name, dim in in_dims.items():
        if name in identity:
            if dim != config.dim:
                raise ConfigError(f"identity head {name!r}: feature dim {dim} != space dim {config.dim}")
            heads[name] = identity_head(dim)
        else:
            heads[name] = ProjectionHead(dim, config.dim, config.head, config.hidden, config.dropout)
    return Space(heads, meta={"train": asdict(config), "identity": list(identity)})


def train_bound_space(pairs_by_edge: dict[tuple[str, str], EdgeData], config: AlignConfig | None = None,
                      frozen: tuple[str, ...] = (), identity: tuple[str, ...] = (),
                      space: Space | None = None) -> AlignResult:
    """Learn one head per modality from several edges of paired features, every edge in every step.

    frozen: modalities whose heads do not train (their space is the anchor).
    identity: modalities whose heads start as the identity (their feature dim must equal config.dim).
    space: continue from an existing space (its heads are reused; missing ones are built).
    An epoch is as many steps as the largest edge needs; smaller edges cycle through their pairs.
    """
    config = config or AlignConfig()
    config.validate()
    if not pairs_by_edge:
        raise ConfigError("train_bound_space: needs at least one edge")
    edges = {}
    for names, data in pairs_by_edge.items():
        if not (isinstance(names, tuple) and len(names) == 2 and names[0] != names[1]):
            raise ConfigError(f"edge key {names!r}: expected a pair of two different modality names")
        edges[names] = (data if isinstance(data, Edge) else Edge(*data)).checked(names)
    in_dims = _in_dims(edges)
    for name in (*frozen, *identity):
        if name not in in_dims:
            raise ConfigError(f"{name!r} is frozen/identity but no edge has it (modalities: {sorted(in_dims)})")
    seed_everything(config.seed)  # before building: the heads' initial weights repeat too
    if space is None:
        space = build_bound_space(in_dims, config, identity)
    else:
        for name, dim in in_dims.items():
            if name not in space.heads:
                space.heads[name] = (identity_head(dim) if name in identity else
                                     ProjectionHead(dim, space.dim, config.head, config.hidden, config.dropout))
    if set(frozen) >= set(in_dims):
        raise ConfigError("train_bound_space: every head is frozen, nothing would train")

    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(edges, space, config, tuple(frozen))
    finally:
        torch.set_num_threads(previous_threads)


class _EdgeSampler:
    """Endless batches of one edge: group members spread over batches, a fresh order each pass."""

    def __init__(self, edge: Edge, batch_size: int, rng: np.random.Generator):
        self.edge, self.batch_size, self.rng = edge, batch_size, rng
        self.queue: list[np.ndarray] = []

    def next(self) -> np.ndarray:
        while True:
            if not self.queue:
                order = self.rng.permutation(len(self.edge.left))
                self.queue = group_batches(order, self.edge.groups, self.batch_size)
            batch = self.queue.pop(0)
            if len(batch) >= 2:
                return batch


def _train(edges: dict[tuple[str, str], Edge], space: Space, config: AlignConfig,
           frozen: tuple[str, ...]) -> AlignResult:
    rng = np.random.default_rng(config.seed)
    for name in frozen:
        space.heads[name].requires_grad_(False)
    losses = {names: make_loss(config.loss, **config.loss_options) for names in edges}
    params = [p for p in space.parameters() if p.requires_grad]
    params += [p for module in losses.values() for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(-(-len(edge.left) // config.batch_size) for edge in edges.values())
    total_steps = config.epochs * steps_per_epoch
    scheduler = warmup_cosine(optimizer, config.warmup_steps, total_steps, config.min_lr_ratio)
    samplers = {names: _EdgeSampler(edge, config.batch_size, rng) for names, edge in edges.items()}
    tensors = {names: (torch.from_numpy(edge.left), torch.from_numpy(edge.right)) for names, edge in edges.items()}

    history, seen_pairs, epoch_losses = [], 0, []
    start = time.perf_counter()
    space.train()
    for frozen_name in frozen:
        space.heads[frozen_name].eval()  # a frozen head with dropout must not change between steps
    for step in range(total_steps):
        total = None
        for names, edge in edges.items():
            batch = samplers[names].next()
            index = torch.from_numpy(batch)
            left, right = tensors[names]
            a = space(names[0], left[index])
            b = space(names[1], right[index])
            unique = torch.from_numpy(unique_mask(batch, edge.groups))
            loss = losses[names](a, b, torch.from_numpy(edge.left_present[batch]) & unique,
                                 torch.from_numpy(edge.right_present[batch]))
            total = loss if total is None else total + loss
            seen_pairs += len(batch)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        scheduler.step()
        epoch_losses.append(float(total.detach()))
        if (step + 1) % steps_per_epoch == 0:
            history.append(float(np.mean(epoch_losses)))
            epoch_losses = []
    seconds = time.perf_counter() - start
    space.eval()
    return AlignResult(space, torch.nn.ModuleDict({"--".join(k): v for k, v in losses.items()}), history, seconds,
                       seen_pairs / max(seconds, 1e-9))
