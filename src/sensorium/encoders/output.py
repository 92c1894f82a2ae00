"""The one type every encoder returns, so fusion never needs to know which encoder it got."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class EncoderOutput:
    """A token sequence, which of its tokens are real, and one pooled vector per sample.

    tokens: (B, T, D) float; mask: (B, T) bool, True = valid token; pooled: (B, D).
    A sample whose mask row is all False is *absent* (its modality is missing for that sample).
    """

    tokens: Tensor
    mask: Tensor
    pooled: Tensor

    def __post_init__(self) -> None:
        if self.tokens.dim() != 3:
            raise ValueError(f"EncoderOutput.tokens must be (B, T, D), got {tuple(self.tokens.shape)}")
        batch, length, dim = self.tokens.shape
        if self.mask.shape != (batch, length) or self.mask.dtype != torch.bool:
            raise ValueError(
                f"EncoderOutput.mask must be bool (B, T) = {(batch, length)}, "
                f"got {self.mask.dtype} {tuple(self.mask.shape)}"
            )
        if self.pooled.shape != (batch, dim):
            raise ValueError(f"EncoderOutput.pooled must be (B, D) = {(batch, dim)}, got {tuple(self.pooled.shape)}")

    @property
    def present(self) -> Tensor:
        """(B,) bool: which samples have at least one valid token."""
        return self.mask.any(dim=1)

    @classmethod
    def from_pooled(cls, pooled: Tensor, present: Tensor | None = None) -> "EncoderOutput":
        """Wrap a (B, D) vector as a one-token sequence (T = 1)."""
        if pooled.dim() != 2:
            raise ValueError(f"a pooled vector must be (B, D), got {tuple(pooled.shape)}")
        mask = torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
        if present is not None:
            mask = mask & present.to(device=pooled.device, dtype=torch.bool).view(-1, 1)
        pooled = pooled * mask.to(pooled.dtype)
        return cls(tokens=pooled.unsqueeze(1), mask=mask, pooled=pooled)
