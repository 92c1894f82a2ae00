"""Low-rank multimodal fusion: tensor fusion without ever building the tensor."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Fusion, Modality


class LowRankTensorFusion(Fusion):
    """Low-rank Multimodal Fusion (Liu et al. 2018, "Efficient Low-rank Multimodal Fusion with
    Modality-Specific Factors").

    The tensor-fusion weight is factorised into `rank` modality-specific factors; the output is
    sum_r prod_m ([1, x_m] W_m^r). As in tensor fusion, a missing modality contributes [1, 0, ..., 0],
    i.e. only its constant row, so its interaction terms drop out exactly.
    """

    def __init__(self, input_dims, output_dim, rank: int = 4):
        super().__init__(input_dims, output_dim)
        self.factors = nn.ParameterDict()
        for name, dim in self.input_dims.items():
            factor = torch.randn(rank, dim + 1, output_dim) * (2.0 / (dim + 1 + output_dim)) ** 0.5
            factor[:, 0] = 1.0  # constant rows of 1: at start the product is ~1 + sum of linear terms
            self.factors[name] = nn.Parameter(factor)
        self.rank_weights = nn.Parameter(torch.full((rank,), 1.0 / rank))
        self.bias = nn.Parameter(torch.zeros(output_dim))

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:
        fused = None
        for name, m in modalities.items():
            values = m.pooled * m.present[:, None].to(m.pooled.dtype)
            augmented = torch.cat([torch.ones_like(values[:, :1]), values], dim=1)
            term = torch.einsum("bi,rio->rbo", augmented, self.factors[name])
            fused = term if fused is None else fused * term
        return torch.einsum("r,rbo->bo", self.rank_weights, fused) + self.bias
