"""An AST-style patch transformer over the log-mel spectrogram (Gong et al. 2021, Audio Spectrogram Transformer)."""
from __future__ import annotations

from torch import Tensor, nn

from .audio_frontend import LogMel, pad_frames, pool_mask
from .layers import TransformerStack, masked_mean, positions
from .output import EncoderOutput


class AudioAST(nn.Module):
    """Non-overlapping (frequency x time) patches with factorised frequency + time positions.

    Separate position tables for the two axes let clips of any length up to `max_frames` share
    one model; a patch is valid when any of its frames is.
    """

    def __init__(self, dim: int = 128, depth: int = 4, heads: int = 4, n_mels: int = 64,
                 patch_mels: int = 16, patch_frames: int = 4, max_frames: int = 1024,
                 sample_rate: int = 16_000, dropout: float = 0.0):
        super().__init__()
        if n_mels % patch_mels:
            raise ValueError(f"n_mels {n_mels} must be a multiple of patch_mels {patch_mels}")
        self.frontend = LogMel(sample_rate=sample_rate, n_mels=n_mels)
        self.patch_frames = patch_frames
        self.bands = n_mels // patch_mels
        self.embed = nn.Conv2d(1, dim, (patch_mels, patch_frames), stride=(patch_mels, patch_frames))
        self.band_positions = positions(self.bands, dim)
        self.time_positions = positions(max_frames // patch_frames, dim)
        self.transformer = TransformerStack(dim, depth, heads, dropout=dropout)
        self.output_dim = dim

    def forward(self, waveform: Tensor, mask: Tensor | None = None) -> EncoderOutput:
        """waveform (B, N) mono at 16 kHz; mask (B, N) marks the valid samples of padded clips."""
        logmel, frames = pad_frames(*self.frontend(waveform, mask), self.patch_frames)
        patches = self.embed(logmel.unsqueeze(1))  # (B, D, bands, steps)
        batch, dim, bands, steps = patches.shape
        if steps > self.time_positions.shape[1]:
            raise ValueError(f"clip has {steps} time patches, more than this model's {self.time_positions.shape[1]}")
        grid = patches.permute(0, 2, 3, 1)  # (B, bands, steps, D)
        grid = grid + self.band_positions.view(1, bands, 1, dim) + self.time_positions[:, :steps].view(1, 1, steps, dim)
        valid = pool_mask(frames, self.patch_frames).unsqueeze(1).expand(batch, bands, steps).reshape(batch, -1)
        tokens = self.transformer(grid.reshape(batch, bands * steps, dim), valid)
        return EncoderOutput(tokens, valid, masked_mean(tokens, valid))
