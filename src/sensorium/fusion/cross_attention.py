"""Cross-attention fusion: every modality's tokens attend to every other modality's tokens."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, Modality, masked_mean, mlp, presence_matrix, present_mean


class CrossBlock(nn.Module):
    """Target tokens query one source modality's tokens (MulT's crossmodal attention)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm_target, self.norm_source = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, target: Tensor, source: Tensor, source_mask: Tensor) -> Tensor:
        attend = source_mask | ~source_mask.any(dim=1, keepdim=True)  # absent rows: no NaN, weight 0 later
        source = self.norm_source(source)
        out, _ = self.attention(self.norm_target(target), source, source, key_padding_mask=~attend, need_weights=False)
        return out


class CrossAttentionFusion(Fusion):
    """Bidirectional cross-modal attention in the style of MulT (Tsai et al. 2019) and LXMERT
    (Tan & Bansal 2019).

    Each layer updates every modality from all the others at once: x_t += mean over present
    sources s != t of CrossAttn(t <- s), then a feed-forward block. Absent sources are masked out
    of that mean per sample, and keys are masked per token; the result is the mean over present
    modalities of each one's masked-mean-pooled tokens.
    """

    def __init__(self, input_dims, output_dim, dim: int = 64, depth: int = 2, heads: int = 4, dropout: float = 0.0):
        super().__init__(input_dims, output_dim)
        self.project = nn.ModuleDict({name: nn.Linear(d, dim) for name, d in self.input_dims.items()})
        pairs = [(t, s) for t in self.modalities for s in self.modalities if s != t]
        self.layers = nn.ModuleList(
            nn.ModuleDict({f"{t}__from__{s}": CrossBlock(dim, heads, dropout) for t, s in pairs}) for _ in range(depth)
        )
        self.feed_forward = nn.ModuleList(
            nn.ModuleDict({t: nn.Sequential(nn.LayerNorm(dim), mlp(dim, 4 * dim, dim, dropout)) for t in self.modalities})
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, output_dim)

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:
        active = {name: m for name, m in modalities.items() if m.present.any()}
        states = {name: self.project[name](m.tokens) for name, m in active.items()}
        for crosses, feed_forward in zip(self.layers, self.feed_forward):
            updated = {}
            for t, x in states.items():
                sources = [s for s in states if s != t]
                if sources:
                    weights = torch.stack([active[s].present for s in sources], dim=1).to(x.dtype)  # (B, S)
                    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
                    for i, s in enumerate(sources):
                        attended = crosses[f"{t}__from__{s}"](x, states[s], active[s].mask)
                        x = x + weights[:, i, None, None] * attended
                updated[t] = x + feed_forward[t](x)
            states = updated
        pooled = torch.stack([masked_mean(self.norm(states[n]), active[n].mask) for n in active], dim=1)
        presence = presence_matrix(active)
        return self.head(present_mean(pooled, presence))
