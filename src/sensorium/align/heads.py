"""Small projection heads that map each modality's frozen features into one shared space (training side).

The experts stay frozen; only these heads learn, so a space trains in seconds on a CPU and is a
few hundred kB on disk. A `Space` is the set of heads keyed by modality (or by feature name, e.g.
"image" for native+bridge features), saved as safetensors weights + a JSON config (no pickle) in
the format `sensorium.space.projection` defines; that module runs the saved heads with numpy at
query time, so searching never imports torch.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, ReadError
from ..space.projection import CONFIG_FILE, HEAD_KINDS, WEIGHTS_FILE
from ..training.checkpoint import load_weights, save_weights


class ProjectionHead(nn.Module):
    """Linear map, or a 2-layer MLP; when in_dim == out_dim the MLP is a residual around identity.

    The residual keeps a head over an already-shared space (bridge 384-d -> 384-d) starting at the
    identity, so a little training can only refine what the frozen space already gets right.
    """

    def __init__(self, in_dim: int, out_dim: int, kind: str = "linear", hidden: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ConfigError(f"head kind: {kind!r} is not one of {HEAD_KINDS}")
        if in_dim < 1 or out_dim < 1:
            raise ConfigError(f"head dims must be positive, got in_dim={in_dim}, out_dim={out_dim}")
        self.in_dim, self.out_dim, self.kind = in_dim, out_dim, kind
        self.hidden = hidden or max(in_dim, out_dim)
        self.residual = kind == "mlp" and in_dim == out_dim
        if kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        else:
            self.net = nn.Sequential(nn.Linear(in_dim, self.hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(self.hidden, out_dim))
            if self.residual:  # start exactly at the identity
                nn.init.zeros_(self.net[-1].weight)
                nn.init.zeros_(self.net[-1].bias)
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        return x + out if self.residual else out

    def config(self) -> dict:
        return {"in_dim": self.in_dim, "out_dim": self.out_dim, "kind": self.kind, "hidden": self.hidden,
                "dropout": self.dropout}


class Space(nn.Module):
    """A learned shared space: one head per modality, all landing in `dim` dimensions."""

    def __init__(self, heads: dict[str, ProjectionHead], meta: dict | None = None):
        super().__init__()
        if not heads:
            raise ConfigError("space: needs at least one head")
        dims = {head.out_dim for head in heads.values()}
        if len(dims) != 1:
            raise ConfigError(f"space: heads disagree on the output dim {sorted(dims)}")
        self.dim = dims.pop()
        self.heads = nn.ModuleDict(heads)
        self.meta = dict(meta or {})

    @classmethod
    def build(cls, in_dims: dict[str, int], dim: int, kind: str = "linear", hidden: int | None = None,
              dropout: float = 0.0, meta: dict | None = None) -> "Space":
        return cls({name: ProjectionHead(d, dim, kind, hidden, dropout) for name, d in in_dims.items()}, meta)

    @property
    def modalities(self) -> list[str]:
        return list(self.heads.keys())

    def forward(self, modality: str, features: Tensor) -> Tensor:
        if modality not in self.heads:
            raise ConfigError(f"space: no head for modality {modality!r} (has {self.modalities})")
        return self.heads[modality](features)

    @torch.no_grad()
    def embed(self, modality: str, features: np.ndarray) -> np.ndarray:
        """Frozen features (n, in_dim) -> unit vectors (n, dim) ready for inner-product search."""
        was_training = self.training
        self.eval()
        out = F.normalize(self(modality, torch.as_tensor(np.asarray(features, dtype=np.float32))), dim=-1)
        self.train(was_training)
        return out.numpy()

    def config(self) -> dict:
        return {"dim": self.dim, "heads": {name: head.config() for name, head in self.heads.items()},
                "meta": self.meta}

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(self, folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(self.config(), indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Space":
        folder = Path(folder)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise ReadError(config_path, "no space config (space.json) in this folder")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            heads = {name: ProjectionHead(**spec) for name, spec in config["heads"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise ReadError(config_path, f"not a valid space config ({exc})") from exc
        space = cls(heads, config.get("meta"))
        load_weights(space, folder / WEIGHTS_FILE)
        space.eval()
        return space
