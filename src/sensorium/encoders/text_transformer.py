"""A small from-scratch text transformer over token ids from `TextTokenizer`."""
from __future__ import annotations

from torch import Tensor, nn

from .layers import TransformerStack, masked_mean, positions, token_mask
from .output import EncoderOutput


class TextTransformer(nn.Module):
    """Token + learned position embeddings -> masked transformer; mean-pooled over real tokens."""

    def __init__(self, vocab_size: int, dim: int = 128, depth: int = 2, heads: int = 4,
                 max_length: int = 256, pad_id: int = 0, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.positions = positions(max_length, dim)
        self.transformer = TransformerStack(dim, depth, heads, dropout=dropout)
        self.pad_id = pad_id
        self.output_dim = dim

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> EncoderOutput:
        """ids (B, T) long; mask (B, T) bool, by default every id that is not padding."""
        if ids.dim() != 2:
            raise ValueError(f"token ids must be (B, T), got {tuple(ids.shape)}")
        if ids.shape[1] > self.positions.shape[1]:
            raise ValueError(f"{ids.shape[1]} tokens exceed max_length {self.positions.shape[1]}")
        valid = ids != self.pad_id if mask is None else token_mask(mask, ids.shape[0], ids.shape[1], ids.device)
        tokens = self.embed(ids) + self.positions[:, : ids.shape[1]]
        tokens = self.transformer(tokens, valid)
        return EncoderOutput(tokens, valid, masked_mean(tokens, valid))
