"""MultiBench's AV-MNIST model, written here from its description, for `sensorium train` by import path.

MultiBench (Liang et al. 2021, `unimodals/common_models.py`) encodes AV-MNIST with LeNet: a 5x5
convolution then `layers` 3x3 ones, each doubling the channels, every one followed by batch norm,
ReLU and 2x2 max pooling, no biases, Kaiming-uniform weights; the last map (1x1 on 28 px images
with 3 extra layers, on 112 px spectrograms with 5) is the feature vector. Its "simple late
fusion" concatenates the two vectors and classifies them with a two-layer MLP (ReLU); here the
concatenation and first layer are the fusion (output_dim = the MLP's hidden width) and the
framework's task head is the MLP's second layer, so the model has exactly MultiBench's parameters.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sensorium.fusion.base import Fusion


class LeNet(nn.Module):
    def __init__(self, in_channels: int = 1, channels: int = 6, layers: int = 3):
        super().__init__()
        widths = [channels * 2**i for i in range(layers + 1)]
        self.convs = nn.ModuleList([nn.Conv2d(in_channels, widths[0], 5, padding=2, bias=False)] + [
            nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, bias=False) for i in range(layers)])
        self.norms = nn.ModuleList(nn.BatchNorm2d(w) for w in widths)
        self.output_dim = widths[-1]
        for conv in self.convs:
            nn.init.kaiming_uniform_(conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = x.float()
        for conv, norm in zip(self.convs, self.norms):
            out = F.max_pool2d(F.relu(norm(conv(out))), 2)
        return out.flatten(1)


class ConcatMLP(Fusion):
    """Concatenated modality vectors -> Linear -> ReLU (MultiBench's Concat + MLP first layer)."""

    def __init__(self, input_dims, output_dim: int):
        super().__init__(input_dims, output_dim)
        self.layer = nn.Linear(sum(self.input_dims.values()), output_dim)

    def fuse(self, modalities) -> Tensor:
        parts = [m.pooled * m.present[:, None].float() for m in modalities.values()]
        return torch.relu(self.layer(torch.cat(parts, dim=1)))
