"""A learned space's projection heads at query time: numpy over the saved safetensors + JSON.

`sensorium align` trains heads as torch modules (`sensorium.align.heads`) and writes them as
`space.safetensors` + `space.json`. Searching, classifying and attaching only run the heads
forward, which is one or two matrix products per head, so this module reads the same two files and
runs them with numpy: a search never imports torch or the training stack (importing torch alone
costs seconds on a cold start).

The file format, defined here because it belongs to the space rather than to its trainer:
- `space.json`: `{"dim": D, "heads": {name: {"in_dim", "out_dim", "kind", "hidden", "dropout"}}, "meta": {}}`;
- `space.safetensors`: `heads.<name>.net.weight` / `.bias` for a linear head;
  `heads.<name>.net.0.*` and `heads.<name>.net.3.*` for an MLP (Linear, GELU, Dropout, Linear),
  which adds its input back when in_dim == out_dim (a residual around the identity).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReadError

HEAD_KINDS = ("linear", "mlp")
WEIGHTS_FILE, CONFIG_FILE = "space.safetensors", "space.json"
_MLP_LAYERS = (0, 3)  # positions of the two Linear layers in the MLP's Sequential


@dataclass(frozen=True)
class HeadSpec:
    """One head's shape, as space.json records it."""

    in_dim: int
    out_dim: int
    kind: str = "linear"
    hidden: int | None = None
    dropout: float = 0.0

    @property
    def residual(self) -> bool:
        return self.kind == "mlp" and self.in_dim == self.out_dim


@dataclass
class Head:
    """A head's spec and its weights (numpy, float32): `forward` is what the torch module computes in eval mode."""

    spec: HeadSpec
    layers: list[tuple[np.ndarray, np.ndarray]]  # (weight (out, in), bias (out,)) per Linear

    @property
    def in_dim(self) -> int:
        return self.spec.in_dim

    @property
    def out_dim(self) -> int:
        return self.spec.out_dim

    def forward(self, features: np.ndarray) -> np.ndarray:
        weight, bias = self.layers[0]
        out = features @ weight.T + bias
        if self.spec.kind == "mlp":
            out = gelu(out)
            weight, bias = self.layers[1]
            out = out @ weight.T + bias
        return features + out if self.spec.residual else out


class Projection:
    """The heads of a saved space, keyed by name ("image", "audio", "text"), all landing in `dim`."""

    def __init__(self, heads: dict[str, Head], meta: dict | None = None):
        dims = {head.out_dim for head in heads.values()}
        if len(dims) != 1:
            raise ValueError(f"heads disagree on the output dim {sorted(dims)}")
        self.heads = heads
        self.dim = dims.pop()
        self.meta = dict(meta or {})

    @property
    def modalities(self) -> list[str]:
        return list(self.heads)

    def embed(self, head: str, features: np.ndarray) -> np.ndarray:
        """Frozen features (n, in_dim) -> unit vectors (n, dim) ready for inner-product search."""
        if head not in self.heads:
            raise KeyError(f"space has no head {head!r} (has {self.modalities})")
        out = self.heads[head].forward(np.asarray(features, dtype=np.float32))
        norms = np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
        return (out / norms).astype(np.float32)

    @classmethod
    def load(cls, folder: str | Path) -> "Projection":
        """Read space.json + space.safetensors; any defect is a ReadError naming the file."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = Path(folder)
        config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        if not config_path.is_file():
            raise ReadError(config_path, "no space config (space.json) in this folder")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            specs = {name: _spec(spec) for name, spec in config["heads"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReadError(config_path, f"not a valid space config ({exc})") from exc
        if not specs:
            raise ReadError(config_path, "space has no heads")
        if not weights_path.is_file():
            raise ReadError(weights_path, "no weights file")
        try:
            tensors = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ReadError(weights_path, f"not a valid safetensors file ({exc})") from exc
        heads = {name: Head(spec, _layers(weights_path, tensors, name, spec)) for name, spec in specs.items()}
        expected = {_key(name, spec, layer, part) for name, spec in specs.items()
                    for layer in _linear_layers(spec) for part in ("weight", "bias")}
        unexpected = sorted(set(tensors) - expected)
        if unexpected:
            raise ReadError(weights_path, f"weights do not fit this space (unexpected {unexpected[:3]})")
        try:
            return cls(heads, config.get("meta"))
        except ValueError as exc:
            raise ReadError(config_path, str(exc)) from exc


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU that torch's `nn.GELU()` computes."""
    return 0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0))))


def erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-7 (Numerical Recipes' erfc Chebyshev fit), vectorised; numpy has none and scipy
    would add its import time to every search."""
    z = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    erfc = t * np.exp(poly)
    return (np.sign(x) * (1.0 - erfc)).astype(np.float32)


def _spec(raw: dict) -> HeadSpec:
    spec = HeadSpec(in_dim=int(raw["in_dim"]), out_dim=int(raw["out_dim"]), kind=str(raw.get("kind", "linear")),
                    hidden=int(raw["hidden"]) if raw.get("hidden") is not None else None,
                    dropout=float(raw.get("dropout", 0.0)))
    if spec.kind not in HEAD_KINDS:
        raise ValueError(f"head kind {spec.kind!r} is not one of {HEAD_KINDS}")
    if spec.in_dim < 1 or spec.out_dim < 1:
        raise ValueError(f"head dims must be positive, got in_dim={spec.in_dim}, out_dim={spec.out_dim}")
    return spec


def _linear_layers(spec: HeadSpec) -> tuple[int | None, ...]:
    return (None,) if spec.kind == "linear" else _MLP_LAYERS


def _key(name: str, spec: HeadSpec, layer: int | None, part: str) -> str:
    return f"heads.{name}.net.{part}" if layer is None else f"heads.{name}.net.{layer}.{part}"


def _layers(path: Path, tensors: dict, name: str, spec: HeadSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    hidden = spec.hidden or max(spec.in_dim, spec.out_dim)
    shapes = ([(spec.out_dim, spec.in_dim)] if spec.kind == "linear"
              else [(hidden, spec.in_dim), (spec.out_dim, hidden)])
    layers = []
    for layer, shape in zip(_linear_layers(spec), shapes):
        weight_key, bias_key = _key(name, spec, layer, "weight"), _key(name, spec, layer, "bias")
        if weight_key not in tensors or bias_key not in tensors:
            raise ReadError(path, f"weights do not fit this space (missing {weight_key!r} or {bias_key!r})")
        weight = np.asarray(tensors[weight_key], dtype=np.float32)
        bias = np.asarray(tensors[bias_key], dtype=np.float32)
        if weight.shape != shape or bias.shape != (shape[0],):
            raise ReadError(path, f"{weight_key}: shape {weight.shape} does not fit head {name!r} ({shape})")
        layers.append((weight, bias))
    return layers
