"""Small pieces several encoders and fusion methods share: masks, pooling, a masked transformer."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def token_mask(mask: Tensor | None, batch: int, length: int, device: torch.device) -> Tensor:
    """A (B, T) bool mask from None (all valid), a per-sample (B,) presence or a (B, T) mask."""
    if mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    mask = mask.to(device=device, dtype=torch.bool)
    if mask.shape == (batch,):
        return mask.view(batch, 1).expand(batch, length)
    if mask.shape == (batch, length):
        return mask
    raise ValueError(f"mask must be (B,) = ({batch},) or (B, T) = ({batch}, {length}), got {tuple(mask.shape)}")


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean over valid tokens; an absent sample (no valid token) pools to zeros, never NaN."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def positions(length: int, dim: int) -> nn.Parameter:
    """Learned position embeddings, initialised small as in ViT."""
    table = nn.Parameter(torch.zeros(1, length, dim))
    nn.init.trunc_normal_(table, std=0.02)
    return table


class TransformerStack(nn.Module):
    """Pre-norm transformer layers that honour a validity mask.

    Padding tokens are never attended to, so a valid token's output does not depend on how much
    padding follows it. Rows with no valid token at all (an absent sample) attend to everything,
    to avoid softmax NaNs, and come out as zeros.
    """

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim * mlp_ratio, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        attend = mask | ~mask.any(dim=1, keepdim=True)
        out = self.layers(tokens, src_key_padding_mask=~attend)
        return self.norm(out) * mask.unsqueeze(-1).to(out.dtype)
