"""A small CNN over the log-mel spectrogram; each downsampled time step becomes one token."""
from __future__ import annotations

from torch import Tensor, nn

from .audio_frontend import LogMel, pad_frames, pool_mask
from .layers import masked_mean
from .output import EncoderOutput


class AudioCNN(nn.Module):
    """Log-mel -> conv blocks pooling time and frequency by 2 each -> (channels x mel) per step -> D."""

    def __init__(self, dim: int = 128, n_mels: int = 64, widths: tuple[int, ...] = (16, 32, 64),
                 sample_rate: int = 16_000):
        super().__init__()
        self.frontend = LogMel(sample_rate=sample_rate, n_mels=n_mels)
        self.stride = 2 ** len(widths)
        if n_mels % self.stride:
            raise ValueError(f"n_mels {n_mels} must be a multiple of {self.stride}")
        blocks, previous = [], 1
        for width in widths:
            blocks += [nn.Conv2d(previous, width, 3, padding=1), nn.GroupNorm(min(8, width), width),
                       nn.GELU(), nn.MaxPool2d(2)]
            previous = width
        self.body = nn.Sequential(*blocks)
        self.project = nn.Linear(previous * (n_mels // self.stride), dim)
        self.output_dim = dim

    def forward(self, waveform: Tensor, mask: Tensor | None = None) -> EncoderOutput:
        """waveform (B, N) mono at 16 kHz; mask (B, N) marks the valid samples of padded clips."""
        logmel, frames = pad_frames(*self.frontend(waveform, mask), self.stride)
        features = self.body(logmel.unsqueeze(1))  # (B, C, mel', T')
        tokens = self.project(features.flatten(1, 2).transpose(1, 2))  # (B, T', D)
        valid = pool_mask(frames, self.stride)
        tokens = tokens * valid.unsqueeze(-1)
        return EncoderOutput(tokens, valid, masked_mean(tokens, valid))
