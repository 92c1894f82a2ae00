"""Gated fusion: learned, input-dependent gates decide how much each modality contributes."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, Modality, presence_matrix


class GatedFusion(Fusion):
    """Gated Multimodal Unit (Arevalo et al. 2017, "Gated Multimodal Units for Information Fusion"),
    generalised from two modalities to M with a softmax over modalities per hidden feature.

    h_m = tanh(W_m x_m); z = softmax_m(W_z [x_1; ...; x_M; presence]); fused = sum_m z_m * h_m.
    The softmax runs over present modalities only (the gates renormalise), and the gate input
    uses a learned stand-in for a missing modality's vector plus presence indicators.
    """

    def __init__(self, input_dims, output_dim, hidden: int = 64):
        super().__init__(input_dims, output_dim)
        self.hidden = hidden
        self.transform = nn.ModuleDict({name: nn.Linear(dim, hidden) for name, dim in self.input_dims.items()})
        self.missing = nn.ParameterDict(
            {name: nn.Parameter(torch.randn(dim) * 0.02) for name, dim in self.input_dims.items()}
        )
        count = len(self.modalities)
        self.gate = nn.Linear(sum(self.input_dims.values()) + count, count * hidden)
        self.out = nn.Linear(hidden, output_dim)

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:
        presence = presence_matrix(modalities)
        gate_input = [
            torch.where(m.present[:, None], m.pooled, self.missing[name].expand_as(m.pooled))
            for name, m in modalities.items()
        ]
        logits = self.gate(torch.cat(gate_input + [presence], dim=1)).view(-1, len(modalities), self.hidden)
        gates = torch.softmax(logits.masked_fill(presence.unsqueeze(-1) == 0, float("-inf")), dim=1)
        views = torch.stack([torch.tanh(self.transform[name](m.pooled)) for name, m in modalities.items()], dim=1)
        return self.out((gates * views).sum(dim=1))
