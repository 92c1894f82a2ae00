"""A small Vision Transformer (Dosovitskiy et al. 2021) sized for CPU training on small images."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .image_cnn import as_image_batch
from .layers import TransformerStack, masked_mean, positions, token_mask
from .output import EncoderOutput


class ImageViT(nn.Module):
    """Non-overlapping patches -> linear embedding + learned positions -> transformer; mean-pooled.

    Images of another size than `image_size` work: the position grid is resized bicubically.
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        in_channels: int = 3,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        dropout: float = 0.0,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.grid = image_size // patch_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.positions = positions(self.grid * self.grid, dim)
        self.transformer = TransformerStack(dim, depth, heads, dropout=dropout)
        self.output_dim = dim

    def _positions(self, height: int, width: int):
        if (height, width) == (self.grid, self.grid):
            return self.positions
        table = self.positions.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(height, width), mode="bicubic", align_corners=False)
        return table.permute(0, 2, 3, 1).reshape(1, height * width, -1)

    def forward(self, images: Tensor, mask: Tensor | None = None) -> EncoderOutput:
        """images (B, C, H, W) with H, W multiples of patch_size; mask: optional (B,) presence."""
        images = as_image_batch(images, self.in_channels)
        if images.shape[-1] % self.patch_size or images.shape[-2] % self.patch_size:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of {self.patch_size}")
        patches = self.embed(images)  # (B, D, h, w)
        height, width = patches.shape[-2:]
        tokens = patches.flatten(2).transpose(1, 2) + self._positions(height, width)
        valid = token_mask(mask, tokens.shape[0], tokens.shape[1], tokens.device)
        tokens = self.transformer(tokens, valid)
        return EncoderOutput(tokens, valid, masked_mean(tokens, valid))
