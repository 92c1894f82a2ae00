"""A video encoder with factorised attention: spatial within each frame, then temporal across frames.

This is the "factorised encoder" of ViViT (Arnab et al. 2021): far cheaper than joint space-time
attention, and the frame encoder can be any image encoder with the same interface.
"""
from __future__ import annotations

from torch import Tensor, nn

from .image_vit import ImageViT
from .layers import TransformerStack, masked_mean, positions, token_mask
from .output import EncoderOutput


class VideoFactorised(nn.Module):
    """Frames -> frame encoder (spatial attention) -> pooled frame vectors -> temporal transformer.

    Tokens are one per frame; a (B, F) mask marks real frames, so clips of different lengths batch.
    """

    def __init__(self, image_size: int = 32, patch_size: int = 8, in_channels: int = 3, dim: int = 128,
                 spatial_depth: int = 2, temporal_depth: int = 2, heads: int = 4, max_frames: int = 64,
                 frame_encoder: nn.Module | None = None, dropout: float = 0.0):
        super().__init__()
        self.frame_encoder = frame_encoder or ImageViT(image_size, patch_size, in_channels, dim, spatial_depth, heads, dropout)
        self.bridge = nn.Linear(self.frame_encoder.output_dim, dim)
        self.positions = positions(max_frames, dim)
        self.temporal = TransformerStack(dim, temporal_depth, heads, dropout=dropout)
        self.output_dim = dim

    def forward(self, frames: Tensor, mask: Tensor | None = None) -> EncoderOutput:
        """frames (B, F, C, H, W); mask (B, F) bool for real frames, or (B,) per-sample presence."""
        if frames.dim() != 5:
            raise ValueError(f"frames must be (B, F, C, H, W), got {tuple(frames.shape)}")
        batch, count = frames.shape[:2]
        if count > self.positions.shape[1]:
            raise ValueError(f"{count} frames exceed max_frames {self.positions.shape[1]}")
        valid = token_mask(mask, batch, count, frames.device)
        per_frame = self.frame_encoder(frames.flatten(0, 1)).pooled.view(batch, count, -1)
        tokens = self.bridge(per_frame) + self.positions[:, :count]
        tokens = self.temporal(tokens, valid)
        return EncoderOutput(tokens, valid, masked_mean(tokens, valid))
