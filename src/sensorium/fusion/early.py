"""Early fusion: concatenate the modalities' vectors and learn one joint head over them."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, Modality, mlp, presence_matrix


class EarlyFusion(Fusion):
    """Feature-level concatenation followed by an MLP (the classic baseline, e.g. Baltrusaitis et al. 2019).

    A missing modality is replaced by a learned "missing" embedding and the input carries a 0/1
    presence indicator per modality, so the head knows absence from a real all-zero feature.
    """

    def __init__(self, input_dims, output_dim, hidden: int = 128, dropout: float = 0.0):
        super().__init__(input_dims, output_dim)
        self.missing = nn.ParameterDict(
            {name: nn.Parameter(torch.randn(dim) * 0.02) for name, dim in self.input_dims.items()}
        )
        self.head = mlp(sum(self.input_dims.values()) + len(self.modalities), hidden, output_dim, dropout)

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:
        parts = [
            torch.where(m.present[:, None], m.pooled, self.missing[name].expand_as(m.pooled))
            for name, m in modalities.items()
        ]
        return self.head(torch.cat(parts + [presence_matrix(modalities)], dim=1))
