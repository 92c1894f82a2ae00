"""The contract every fusion method shares, and the one place inputs are validated.

forward(inputs, present=None) -> (B, output_dim). `inputs` maps modality -> EncoderOutput or a
pooled (B, D) Tensor. A modality is missing for a sample when its key is absent, when its mask
row is all False, or when `present[modality]` is False for that sample. Methods then see every
declared modality with an explicit (B,) presence vector and must handle absence deliberately;
nothing is zero-filled behind their back.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..encoders.layers import masked_mean
from ..encoders.output import EncoderOutput
from ..errors import ConfigError


@dataclass
class Modality:
    """One modality's inputs after validation. Absent samples have zero tokens, zero pooled, False mask."""

    tokens: Tensor  # (B, T, D)
    mask: Tensor  # (B, T) bool
    pooled: Tensor  # (B, D)
    present: Tensor  # (B,) bool


class Fusion(nn.Module):
    """Base of every fusion method: validates inputs and resolves per-sample presence."""

    def __init__(self, input_dims: Mapping[str, int], output_dim: int):
        super().__init__()
        if not input_dims:
            raise ConfigError("fusion: input_dims is empty; name at least one modality and its width")
        for name, dim in input_dims.items():
            if not isinstance(dim, int) or dim <= 0:
                raise ConfigError(f"fusion: input_dims[{name!r}] must be a positive int, got {dim!r}")
        if not isinstance(output_dim, int) or output_dim <= 0:
            raise ConfigError(f"fusion: output_dim must be a positive int, got {output_dim!r}")
        self.input_dims = dict(input_dims)
        self.modalities = tuple(input_dims)
        self.output_dim = output_dim

    def forward(self, inputs: Mapping[str, EncoderOutput | Tensor],
                present: Mapping[str, Tensor] | None = None) -> Tensor:
        return self.fuse(self.gather(inputs, present))

    def fuse(self, modalities: dict[str, Modality]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def gather(self, inputs: Mapping[str, EncoderOutput | Tensor],
               present: Mapping[str, Tensor] | None = None) -> dict[str, Modality]:
        """Validate `inputs` and return every declared modality with its (B,) presence."""
        if not inputs:
            raise ValueError(f"fusion: no inputs; expected a non-empty subset of {list(self.modalities)}")
        present = dict(present or {})
        for name in list(inputs) + list(present):
            if name not in self.input_dims:
                raise ValueError(f"fusion: unknown modality {name!r}; this fusion takes {list(self.modalities)}")
        for name in present:
            if name not in inputs:
                raise ValueError(f"fusion: present[{name!r}] given but inputs has no {name!r}")
        given = {name: self._as_output(name, value) for name, value in inputs.items()}
        first = next(iter(given.values())).pooled
        batch, device, dtype = first.shape[0], first.device, first.dtype
        gathered = {}
        for name in self.modalities:
            if name not in given:
                zeros = torch.zeros(batch, 1, self.input_dims[name], device=device, dtype=dtype)
                absent = torch.zeros(batch, dtype=torch.bool, device=device)
                gathered[name] = Modality(zeros, absent[:, None], zeros[:, 0], absent)
                continue
            out = given[name]
            if out.pooled.shape[0] != batch:
                raise ValueError(f"fusion: {name!r} has batch size {out.pooled.shape[0]}, expected {batch}")
            here = out.mask.any(dim=1)
            if name in present:
                flags = present[name].to(device=device, dtype=torch.bool)
                if flags.shape != (batch,):
                    raise ValueError(f"fusion: present[{name!r}] must be (B,) = ({batch},), got {tuple(flags.shape)}")
                here = here & flags
            mask = out.mask & here[:, None]
            tokens = torch.where(mask.unsqueeze(-1), out.tokens, torch.zeros((), dtype=dtype, device=device))
            gathered[name] = Modality(tokens, mask, torch.where(here[:, None], out.pooled, torch.zeros_like(out.pooled)), here)
        nobody = ~torch.stack([m.present for m in gathered.values()]).any(dim=0)
        if nobody.any():
            rows = nobody.nonzero().flatten().tolist()
            raise ValueError(f"fusion: sample(s) {rows} have no modality present")
        return gathered

    def _as_output(self, name: str, value: EncoderOutput | Tensor) -> EncoderOutput:
        dim = self.input_dims[name]
        if isinstance(value, Tensor):
            if value.dim() != 2:
                raise ValueError(f"fusion: {name!r} tensor must be pooled (B, D), got {tuple(value.shape)}")
            value = EncoderOutput.from_pooled(value)
        elif not isinstance(value, EncoderOutput):
            raise ValueError(f"fusion: {name!r} must be an EncoderOutput or a (B, D) Tensor, got {type(value).__name__}")
        if value.pooled.shape[1] != dim:
            raise ValueError(f"fusion: {name!r} has width {value.pooled.shape[1]}, expected {dim}")
        return value


def mlp(inputs: int, hidden: int, outputs: int, dropout: float = 0.0) -> nn.Sequential:
    """The two-layer head most methods end with."""
    return nn.Sequential(nn.Linear(inputs, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, outputs))


def presence_matrix(modalities: dict[str, Modality]) -> Tensor:
    """(B, M) float 0/1 presence, in declared modality order."""
    return torch.stack([m.present for m in modalities.values()], dim=1).float()


def present_mean(values: Tensor, presence: Tensor) -> Tensor:
    """Mean over the modality axis (dim 1) of `values` (B, M, ...) counting only present modalities."""
    weights = presence.view(*presence.shape, *([1] * (values.dim() - 2)))
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


__all__ = ["Fusion", "Modality", "masked_mean", "mlp", "presence_matrix", "present_mean"]
