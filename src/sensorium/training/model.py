"""Encoders + fusion + one linear head per task, assembled from a config into one module.

A unimodal model is the same thing with one modality, so baselines and fused models share every
line of training and evaluation code.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .. import encoders, fusion
from ..encoders import EncoderOutput
from ..errors import ConfigError
from .config import Config

Batch = dict  # {"inputs": {m: Tensor}, "masks": {m: Tensor}, "present": {m: (B,) bool}, "labels": {task: (B,)}}


class MultimodalModel(nn.Module):
    """forward(batch) -> {task: logits (B, classes)}; modalities absent from the batch are missing."""

    def __init__(self, encoder_modules: Mapping[str, nn.Module], fusion_module: nn.Module,
                 classes: Mapping[str, int], unimodal_heads: bool = False):
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoder_modules))
        self.fusion = fusion_module
        width = fusion_module.output_dim
        self.heads = nn.ModuleDict({task: nn.Linear(width, count) for task, count in classes.items()})
        # Training-only heads on each encoder's own vector (Gradient-Blending, Wang et al. 2020): their
        # losses keep every encoder learning even when another modality alone could fit the labels.
        self.unimodal_heads = nn.ModuleDict({
            name: nn.ModuleDict({task: nn.Linear(int(encoder.output_dim), count) for task, count in classes.items()})
            for name, encoder in self.encoders.items()
        }) if unimodal_heads and len(self.encoders) > 1 else None

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def encoder_arguments(self, batch: Batch) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        """Per modality the batch carries: (value, mask, presence), as its encoder is called. The mask is
        the batch's own (padding) mask with absent samples cleared, or the presence when there is none."""
        inputs, masks = batch["inputs"], batch.get("masks", {})
        arguments = {}
        for name in self.encoders:
            if name not in inputs:
                continue
            value = inputs[name]
            here = batch.get("present", {}).get(name)
            if here is None:
                here = torch.ones(value.shape[0], dtype=torch.bool, device=value.device)
            mask = masks.get(name)
            mask = here if mask is None else mask & here.view(-1, *([1] * (mask.dim() - 1)))
            arguments[name] = (value, mask, here)
        return arguments

    def encode(self, batch: Batch) -> tuple[dict[str, EncoderOutput], dict[str, Tensor]]:
        """Run each modality the batch carries through its encoder; returns outputs and presence."""
        outputs, present = {}, {}
        for name, (value, mask, here) in self.encoder_arguments(batch).items():
            outputs[name] = self.encoders[name](value, mask)
            present[name] = here
        if not outputs:
            raise ValueError(f"batch carries none of this model's modalities {self.modalities}")
        return outputs, present

    def fuse(self, outputs: Mapping[str, EncoderOutput], present: Mapping[str, Tensor]) -> dict[str, Tensor]:
        features = self.fusion(dict(outputs), present=dict(present))
        return {task: head(features) for task, head in self.heads.items()}

    def unimodal_logits(self, outputs: Mapping[str, EncoderOutput],
                        present: Mapping[str, Tensor]) -> dict[str, tuple[Tensor, dict[str, Tensor]]]:
        """Per modality: (its presence (B,), {task: logits}) from its own head; {} without such heads."""
        if self.unimodal_heads is None:
            return {}
        return {name: (present[name], {task: head(outputs[name].pooled) for task, head in self.unimodal_heads[name].items()})
                for name in outputs}

    def forward(self, batch: Batch, return_parts: bool = False):
        """Logits per task; with return_parts also the encoder outputs and presence (for OGM-GE)."""
        outputs, present = self.encode(batch)
        logits = self.fuse(outputs, present)
        return (logits, outputs, present) if return_parts else logits


def build_model(config: Config, classes: Mapping[str, int], vocab_sizes: Mapping[str, int] | None = None) -> MultimodalModel:
    """The model a config describes; `classes` = {task: class count}; text encoders need a vocabulary size."""
    built, dims = {}, {}
    for modality, table in config.model.encoders.items():
        kwargs = {k: v for k, v in table.items() if k != "name"}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        if table["name"] == "text_transformer" and "vocab_size" not in kwargs:
            if not vocab_sizes or modality not in vocab_sizes:
                raise ConfigError(f"model.encoders.{modality}: text_transformer needs a tokenizer (data kind 'text')")
            kwargs["vocab_size"] = vocab_sizes[modality]
        try:
            encoder = encoders.create(table["name"], **kwargs)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"model.encoders.{modality}: {exc}") from exc
        built[modality] = encoder
        dims[modality] = int(encoder.output_dim)
    table = dict(config.model.fusion)
    method, output_dim = table.pop("method"), table.pop("output_dim")
    try:
        fused = fusion.create(method, dims, output_dim, **table)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"model.fusion: {exc}") from exc
    return MultimodalModel(built, fused, classes, unimodal_heads=config.train.unimodal_loss_weight > 0)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
