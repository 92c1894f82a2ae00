"""Late fusion: one prediction head per modality, combined at the output."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, Modality, mlp, presence_matrix, present_mean


class LateFusion(Fusion):
    """Decision-level fusion: per-modality heads averaged, or weighted by learned softmax weights.

    Only present modalities vote: the mean, or the softmax over weights, runs over the modalities
    each sample actually has, so a missing one neither votes nor dilutes the others.
    """

    def __init__(self, input_dims, output_dim, hidden: int = 64, weighting: str = "mean", dropout: float = 0.0):
        super().__init__(input_dims, output_dim)
        if weighting not in ("mean", "learned"):
            raise ValueError(f"late fusion: weighting must be 'mean' or 'learned', got {weighting!r}")
        self.weighting = weighting
        self.heads = nn.ModuleDict({name: mlp(dim, hidden, output_dim, dropout) for name, dim in self.input_dims.items()})
        self.weight_logits = nn.Parameter(torch.zeros(len(self.modalities))) if weighting == "learned" else None

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:
        votes = torch.stack([self.heads[name](m.pooled) for name, m in modalities.items()], dim=1)  # (B, M, O)
        presence = presence_matrix(modalities)
        if self.weight_logits is None:
            return present_mean(votes, presence)
        logits = self.weight_logits.expand_as(presence).masked_fill(presence == 0, float("-inf"))
        return (torch.softmax(logits, dim=1).unsqueeze(-1) * votes).sum(dim=1)
