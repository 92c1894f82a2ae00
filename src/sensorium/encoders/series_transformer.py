"""A small transformer for multichannel time series."""
from __future__ import annotations

from torch import Tensor, nn

from .layers import TransformerStack, masked_mean, positions, token_mask
from .output import EncoderOutput


class SeriesTransformer(nn.Module):
    """Each time step's channels -> linear embedding + learned position -> masked transformer."""

    def __init__(self, in_channels: int, dim: int = 64, depth: int = 2, heads: int = 4,
                 max_length: int = 512, dropout: float = 0.0):
        super().__init__()
        self.input = nn.Linear(in_channels, dim)
        self.positions = positions(max_length, dim)
        self.transformer = TransformerStack(dim, depth, heads, dropout=dropout)
        self.in_channels = in_channels
        self.output_dim = dim

    def forward(self, series: Tensor, mask: Tensor | None = None) -> EncoderOutput:
        """series (B, T, C) float; mask (B, T) or (B,) bool."""
        if series.dim() != 3 or series.shape[-1] != self.in_channels:
            raise ValueError(f"series must be (B, T, {self.in_channels}), got {tuple(series.shape)}")
        if series.shape[1] > self.positions.shape[1]:
            raise ValueError(f"{series.shape[1]} steps exceed max_length {self.positions.shape[1]}")
        valid = token_mask(mask, series.shape[0], series.shape[1], series.device)
        tokens = self.input(series.float()) + self.positions[:, : series.shape[1]]
        tokens = self.transformer(tokens, valid)
        return EncoderOutput(tokens, valid, masked_mean(tokens, valid))
