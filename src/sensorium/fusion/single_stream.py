"""Single-stream fusion: one transformer over all modalities' tokens at once."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..encoders.layers import TransformerStack
from .base import Fusion, Modality


class SingleStreamFusion(Fusion):
    """One transformer over the concatenated tokens of every modality, each tagged with a learned
    modality-type embedding, read out at a [CLS] token (VisualBERT, Li et al. 2019; ViLT, Kim et al. 2021).

    Missing tokens are masked as keys; the [CLS] token is always valid, so every sample attends to
    something, and a sample's output depends only on the tokens it really has.
    """

    def __init__(self, input_dims, output_dim, dim: int = 64, depth: int = 2, heads: int = 4, dropout: float = 0.0):
        super().__init__(input_dims, output_dim)
        self.project = nn.ModuleDict({name: nn.Linear(d, dim) for name, d in self.input_dims.items()})
        self.type_embedding = nn.ParameterDict({name: nn.Parameter(torch.randn(dim) * 0.02) for name in self.modalities})
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.transformer = TransformerStack(dim, depth, heads, dropout=dropout)
        self.head = nn.Linear(dim, output_dim)

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:
        batch = next(iter(modalities.values())).present.shape[0]
        sequence = [self.cls.expand(batch, 1, -1)]
        masks = [torch.ones(batch, 1, dtype=torch.bool, device=self.cls.device)]
        for name, m in modalities.items():
            if m.present.any():  # a modality absent from the whole batch adds no tokens at all
                sequence.append(self.project[name](m.tokens) + self.type_embedding[name])
                masks.append(m.mask)
        out = self.transformer(torch.cat(sequence, dim=1), torch.cat(masks, dim=1))
        return self.head(out[:, 0])
