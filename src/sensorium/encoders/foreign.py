"""Your own encoder module, named by import path, made to speak `EncoderOutput`.

Any `torch.nn.Module` whose forward takes the modality's batch tensor works: if it returns an
`EncoderOutput` it is passed through; a (B, D) tensor becomes a one-token output (MultiBench's
LeNet returns that); a (B, T, D) tensor is a token sequence, mean-pooled. Its width comes from
`output_dim` in the config or the module's own `output_dim` attribute.
"""
from __future__ import annotations

from torch import Tensor, nn

from .output import EncoderOutput


class ForeignEncoder(nn.Module):
    def __init__(self, module: nn.Module, output_dim: int, name: str):
        super().__init__()
        self.module = module
        self.output_dim = int(output_dim)
        self.name = name

    def forward(self, value: Tensor, mask: Tensor | None = None) -> EncoderOutput:
        out = self.module(value)
        if isinstance(out, EncoderOutput):
            return out
        if isinstance(out, Tensor) and out.dim() == 2:
            result = EncoderOutput.from_pooled(out)
        elif isinstance(out, Tensor) and out.dim() == 3:
            import torch

            tokens = out
            result = EncoderOutput(tokens=tokens, mask=torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device),
                                   pooled=tokens.mean(dim=1))
        else:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"encoder {self.name}: returned {shape}; expected (B, D), (B, T, D) or an EncoderOutput")
        if result.pooled.shape[1] != self.output_dim:
            raise ValueError(f"encoder {self.name}: returned width {result.pooled.shape[1]}, the config says "
                             f"output_dim = {self.output_dim}")
        return result
