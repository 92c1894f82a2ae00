"""Tensor fusion: the outer product of the modalities' (1-augmented) vectors."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, Modality, mlp


class TensorFusion(Fusion):
    """Tensor Fusion Network (Zadeh et al. 2017, "Tensor Fusion Network for Multimodal Sentiment Analysis").

    Each modality is projected to `rank_dim` values and augmented with a constant 1; the outer
    product then holds every unimodal, bimodal and trimodal interaction term. A missing modality
    is represented by exactly [1, 0, ..., 0], so it drops out of the product and only the terms
    of the present modalities remain. Size grows as (rank_dim + 1) ** modalities: keep rank_dim small.
    """

    def __init__(self, input_dims, output_dim, rank_dim: int = 8, hidden: int = 128, dropout: float = 0.0):
        super().__init__(input_dims, output_dim)
        self.project = nn.ModuleDict({name: nn.Linear(dim, rank_dim) for name, dim in self.input_dims.items()})
        self.head = mlp((rank_dim + 1) ** len(self.modalities), hidden, output_dim, dropout)

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:
        first = next(iter(modalities.values())).pooled
        product = torch.ones(first.shape[0], 1, device=first.device, dtype=first.dtype)
        for name, m in modalities.items():
            values = self.project[name](m.pooled) * m.present[:, None].to(first.dtype)  # absent -> exactly 0
            augmented = torch.cat([torch.ones_like(values[:, :1]), values], dim=1)
            product = (product.unsqueeze(2) * augmented.unsqueeze(1)).flatten(1)
        return self.head(product)
