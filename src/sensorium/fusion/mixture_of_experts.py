"""Mixture-of-experts fusion: a router mixes modality-specific and shared experts per sample."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, Modality, mlp, presence_matrix, present_mean


class MixtureOfExpertsFusion(Fusion):
    """Modality-aware mixture of experts, after the modality experts of VLMo (Bao et al. 2022) and
    the sparse routing of Shazeer et al. 2017.

    Each modality has its own expert on its own vector; `shared_experts` more work on the mean of
    the present modalities. A router sees that mean plus the presence pattern and gates only over
    the experts that can run: a missing modality's expert gets weight exactly 0. With `top_k` the
    gate keeps the k best allowed experts. Experts are ordered: one per
    modality (declared order), then the shared ones; `gates` keeps the last forward's weights. `balance_loss` (Switch-style, 1.0 when balanced) is
    refreshed every forward for a trainer to add.
    """

    def __init__(self, input_dims, output_dim, hidden: int = 64, shared_experts: int = 1,
                 top_k: int | None = None, dropout: float = 0.0):
        super().__init__(input_dims, output_dim)
        count = len(self.modalities)
        self.project = nn.ModuleDict({name: nn.Linear(dim, hidden) for name, dim in self.input_dims.items()})
        self.modality_experts = nn.ModuleDict({name: mlp(hidden, 2 * hidden, hidden, dropout) for name in self.modalities})
        self.shared_experts = nn.ModuleList(mlp(hidden, 2 * hidden, hidden, dropout) for _ in range(shared_experts))
        self.router = nn.Linear(hidden + count, count + shared_experts)
        self.head = nn.Linear(hidden, output_dim)
        self.top_k = top_k
        self.balance_loss = torch.zeros(())
        self.gates = torch.zeros(0)  # (B, experts) of the last forward, detached, for inspection

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:
        presence = presence_matrix(modalities)  # (B, M)
        views = torch.stack([self.project[name](m.pooled) for name, m in modalities.items()], dim=1)
        context = present_mean(views, presence)
        logits = self.router(torch.cat([context, presence], dim=1))
        allowed = torch.cat([presence > 0, torch.ones_like(logits[:, presence.shape[1]:], dtype=torch.bool)], dim=1)
        logits = logits.masked_fill(~allowed, float("-inf"))
        if self.top_k is not None and self.top_k < logits.shape[1]:
            kth = logits.topk(self.top_k, dim=1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        gates = torch.softmax(logits, dim=1)
        outputs = [self.modality_experts[name](views[:, i]) for i, name in enumerate(modalities)]
        outputs += [expert(context) for expert in self.shared_experts]
        fused = (gates.unsqueeze(-1) * torch.stack(outputs, dim=1)).sum(dim=1)
        self.gates = gates.detach()
        load = gates.mean(dim=0)
        self.balance_loss = load.numel() * (load * load).sum()
        return self.head(fused)
