"""Frozen features as an encoder: pretrained experts or precomputed vectors behind the same interface."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .layers import token_mask
from .output import EncoderOutput


class VectorTable(nn.Module):
    """Precomputed vectors (N, D) looked up by integer index; a buffer, so it moves with .to()."""

    def __init__(self, vectors: Tensor | np.ndarray):
        super().__init__()
        table = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
        if table.dim() != 2:
            raise ValueError(f"a vector table must be (N, D), got {tuple(table.shape)}")
        self.register_buffer("vectors", table)

    def forward(self, index: Tensor | list[int]) -> Tensor:
        return self.vectors[torch.as_tensor(index, device=self.vectors.device).long()]


class FrozenEncoder(nn.Module):
    """Wraps any callable returning (B, D) features (e.g. `TextEncoder().encode`) as a T = 1 encoder.

    Nothing here trains: features are computed without gradient and returned as one token, so a
    fusion method can mix frozen experts and trainable encoders freely.
    """

    def __init__(self, features: Callable[[Any], Tensor | np.ndarray], output_dim: int):
        super().__init__()
        if not callable(features):
            raise ValueError("features must be callable")
        self.features = features
        if isinstance(features, nn.Module):
            features.requires_grad_(False).eval()
        self.output_dim = int(output_dim)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # follows .to(device)

    @classmethod
    def from_table(cls, vectors: Tensor | np.ndarray) -> "FrozenEncoder":
        """Look up precomputed vectors (N, D) by index: forward(LongTensor (B,))."""
        table = VectorTable(vectors)
        return cls(table, table.vectors.shape[1])

    def train(self, mode: bool = True) -> "FrozenEncoder":
        super().train(mode)
        if isinstance(self.features, nn.Module):
            self.features.eval()  # frozen stays frozen, dropout and norms included
        return self

    def forward(self, inputs: Any, mask: Tensor | None = None) -> EncoderOutput:
        """inputs: whatever the wrapped callable takes; mask: optional (B,) per-sample presence."""
        with torch.no_grad():
            raw = self.features(inputs)
        features = raw if isinstance(raw, Tensor) else torch.as_tensor(np.asarray(raw))
        features = features.detach().to(device=self._anchor.device, dtype=torch.float32)
        if features.dim() != 2 or features.shape[1] != self.output_dim:
            raise ValueError(f"frozen features must be (B, {self.output_dim}), got {tuple(features.shape)}")
        valid = token_mask(mask, features.shape[0], 1, features.device)
        features = features * valid.float()
        return EncoderOutput(features.unsqueeze(1), valid, features)
