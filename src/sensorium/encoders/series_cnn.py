"""A 1-D CNN for multichannel time series (accelerometer, gyroscope, sensor logs)."""
from __future__ import annotations

from torch import Tensor, nn

from .layers import masked_mean, token_mask
from .output import EncoderOutput


class SeriesCNN(nn.Module):
    """Residual dilated 1-D convolutions, one token per time step.

    Padded steps are zeroed before every convolution and only per-step LayerNorm is used, so the
    valid steps see exactly what zero 'same' padding would show them: padding-invariant.
    """

    def __init__(self, in_channels: int, dim: int = 64, depth: int = 3, kernel_size: int = 5):
        super().__init__()
        self.input = nn.Linear(in_channels, dim)
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, kernel_size, padding=(kernel_size // 2) * 2**i, dilation=2**i) for i in range(depth)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.in_channels = in_channels
        self.output_dim = dim

    def forward(self, series: Tensor, mask: Tensor | None = None) -> EncoderOutput:
        """series (B, T, C) float; mask (B, T) or (B,) bool."""
        if series.dim() != 3 or series.shape[-1] != self.in_channels:
            raise ValueError(f"series must be (B, T, {self.in_channels}), got {tuple(series.shape)}")
        valid = token_mask(mask, series.shape[0], series.shape[1], series.device)
        keep = valid.unsqueeze(-1).float()
        tokens = self.input(series.float()) * keep
        for conv, norm in zip(self.convs, self.norms):
            update = conv(tokens.transpose(1, 2)).transpose(1, 2)
            tokens = (tokens + nn.functional.gelu(norm(update))) * keep
        return EncoderOutput(tokens, valid, masked_mean(tokens, valid))
