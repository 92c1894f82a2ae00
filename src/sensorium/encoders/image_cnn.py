"""A small convolutional image encoder: the from-scratch baseline for images (MNIST-sized to 64 px)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import masked_mean, token_mask
from .output import EncoderOutput


def as_image_batch(images: Tensor, in_channels: int) -> Tensor:
    """(B, C, H, W) float; uint8 is scaled to [0, 1]; (B, H, W) is taken as one channel."""
    if images.dim() == 3 and in_channels == 1:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] != in_channels:
        raise ValueError(f"images must be (B, {in_channels}, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    return images.float()


class ImageCNN(nn.Module):
    """Conv -> GroupNorm -> GELU -> 2x2 max-pool blocks; each cell of the last map is one token.

    GroupNorm rather than BatchNorm so a sample's features never depend on the rest of its batch.
    """

    def __init__(self, in_channels: int = 3, dim: int = 128, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        blocks, previous = [], in_channels
        for width in widths:
            blocks += [
                nn.Conv2d(previous, width, 3, padding=1),
                nn.GroupNorm(min(8, width), width),
                nn.GELU(),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.body = nn.Sequential(*blocks)
        self.project = nn.Conv2d(previous, dim, 1)
        self.in_channels = in_channels
        self.output_dim = dim

    def forward(self, images: Tensor, mask: Tensor | None = None) -> EncoderOutput:
        """images (B, C, H, W); mask, if given, is a (B,) per-sample presence."""
        features = self.project(self.body(as_image_batch(images, self.in_channels)))
        tokens = features.flatten(2).transpose(1, 2)  # (B, h*w, D)
        valid = token_mask(mask, tokens.shape[0], tokens.shape[1], tokens.device)
        tokens = tokens * valid.unsqueeze(-1)
        return EncoderOutput(tokens, valid, masked_mean(tokens, valid))
