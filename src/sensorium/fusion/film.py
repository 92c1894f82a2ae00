"""FiLM: the other modalities steer a convolutional reasoner over one modality's grid of tokens.

Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer" (AAAI 2018), the CLEVR
model: a question (here: the pooled vector of every non-visual modality) predicts a scale and a
shift for each channel of each residual block, which run 3 x 3 convolutions over the picture's
feature map with the cells' coordinates appended (so "left of" is visible to the convolutions).
The map is then pooled two ways, by a learned attention over cells (which is also where the
model looked: `attention`, for grounding) and by a max, and classified.

Presence: the conditioning modalities each add their own (scale, shift) term, so an absent one
adds nothing (no conditioning at all: scale 1, shift 0, a plain CNN); a sample without its visual
modality is answered from the conditioning vectors alone by a separate small head. Tokens that do
not form a square grid are laid out as one row.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import Fusion, Modality, mlp


def grid_shape(tokens: int) -> tuple[int, int]:
    """(height, width) of the cell grid `tokens` cells are laid out on: square when they can be."""
    side = math.isqrt(tokens)
    return (side, side) if side * side == tokens else (1, tokens)


def coordinate_channels(batch: int, height: int, width: int, like: Tensor) -> Tensor:
    """(B, 2, H, W): each cell's column and row, scaled to [-1, 1]."""
    ys = torch.linspace(-1, 1, height, dtype=like.dtype, device=like.device) if height > 1 else like.new_zeros(1)
    xs = torch.linspace(-1, 1, width, dtype=like.dtype, device=like.device) if width > 1 else like.new_zeros(1)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=0)  # (2, H, W)
    return grid.unsqueeze(0).expand(batch, -1, -1, -1)


class FiLMBlock(nn.Module):
    """1 x 1 conv, 3 x 3 conv, normalisation without its own affine, FiLM, ReLU, residual (as in the paper)."""

    def __init__(self, dim: int):
        super().__init__()
        self.mix = nn.Conv2d(dim + 2, dim, 1)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm = nn.GroupNorm(1, dim, affine=False)  # per sample: no batch statistics

    def forward(self, x: Tensor, coords: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        h = torch.relu(self.mix(torch.cat([x, coords], dim=1)))
        y = self.norm(self.conv(h))
        return h + torch.relu((1 + gamma)[..., None, None] * y + beta[..., None, None])


class FiLMFusion(Fusion):
    """FiLM over the `visual` modality's token grid (default: the first modality), steered by the rest."""

    def __init__(self, input_dims, output_dim, visual: str | None = None, dim: int = 64, blocks: int = 3,
                 hidden: int = 128, dropout: float = 0.0):
        super().__init__(input_dims, output_dim)
        self.visual = visual or self.modalities[0]
        if self.visual not in self.input_dims:
            raise ValueError(f"film: visual = {self.visual!r} is not one of the modalities {list(self.modalities)}")
        self.conditions = [m for m in self.modalities if m != self.visual]
        self.dim, self.block_count = dim, blocks
        self.stem = nn.Sequential(nn.Conv2d(self.input_dims[self.visual] + 2, dim, 1), nn.ReLU())
        self.blocks = nn.ModuleList(FiLMBlock(dim) for _ in range(blocks))
        self.film = nn.ModuleDict({m: nn.Linear(self.input_dims[m], 2 * dim * blocks) for m in self.conditions})
        with torch.no_grad():  # start close to a plain CNN: scale near 1, shift near 0
            for layer in self.film.values():
                layer.weight.mul_(0.1)
                layer.bias.mul_(0.1)
        self.attend = nn.Conv2d(dim + 2, 1, 1)
        self.head = mlp(2 * dim, hidden, output_dim, dropout)
        self.alone = nn.ModuleDict({m: nn.Linear(self.input_dims[m], hidden) for m in self.conditions})
        self.alone_head = nn.Sequential(nn.GELU(), nn.Linear(hidden, output_dim))
        self.attention: Tensor | None = None  # (B, H, W) of the last call: where each answer looked

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:
        seen = modalities[self.visual]
        batch, cells, _ = seen.tokens.shape
        height, width = grid_shape(cells)
        x = seen.tokens.transpose(1, 2).reshape(batch, -1, height, width)
        valid = seen.mask.reshape(batch, 1, height, width)
        coords = coordinate_channels(batch, height, width, x)
        x = self.stem(torch.cat([x, coords], dim=1)) * valid
        film = x.new_zeros(batch, 2 * self.dim * self.block_count)
        for name in self.conditions:
            m = modalities[name]
            if m.present.any():
                film = film + self.film[name](m.pooled) * m.present[:, None]
        film = film.view(batch, self.block_count, 2, self.dim)
        for number, block in enumerate(self.blocks):
            x = block(x, coords, film[:, number, 0], film[:, number, 1]) * valid
        logits = self.attend(torch.cat([x, coords], dim=1)).flatten(1)
        logits = logits.masked_fill(~seen.mask, float("-inf"))
        weights = torch.softmax(logits.masked_fill(~seen.mask.any(1, keepdim=True), 0.0), dim=1)
        self.attention = weights.detach().view(batch, height, width)
        flat = x.flatten(2)  # (B, dim, cells)
        attended = torch.einsum("bdc,bc->bd", flat, weights)
        peak = flat.masked_fill(~seen.mask[:, None, :], float("-inf")).amax(dim=2)
        peak = torch.where(seen.present[:, None], peak, torch.zeros_like(peak))
        answer = self.head(torch.cat([attended, peak], dim=1))
        if not self.conditions:
            return answer
        alone = x.new_zeros(batch, self.alone_head[1].in_features)
        count = x.new_zeros(batch, 1)
        for name in self.conditions:
            m = modalities[name]
            if m.present.any():
                alone = alone + self.alone[name](m.pooled) * m.present[:, None]
                count = count + m.present[:, None].to(x.dtype)
        without_visual = self.alone_head(alone / count.clamp(min=1.0))
        return torch.where(seen.present[:, None], answer, without_visual)
