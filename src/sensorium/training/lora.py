"""Adapt a trained model with LoRA (Hu et al. 2021) through the `peft` library.

The trained weights stay frozen; only low-rank updates of the chosen Linear / Conv layers (and,
optionally, the task heads) train, so adapting to a new dataset costs a few percent of the
parameters and the base model can be shared.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError

ADAPTABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass
class LoraReport:
    trainable: int
    total: int
    adapted_layers: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"LoRA: {self.trainable:,} trainable of {self.total:,} parameters ({100 * self.fraction:.2f}%), "
                f"{self.adapted_layers} layers adapted")


def adaptable_layers(model: nn.Module, exclude: Sequence[str] = ("heads",)) -> list[str]:
    """Names of the Linear / Conv layers LoRA can wrap, outside `exclude`d submodules.

    nn.MultiheadAttention's projections are left out: it reads their weight tensors directly, so
    a wrapped Linear there would be bypassed. The feed-forward Linears around attention are adapted.
    """
    names = []
    for name, module in model.named_modules():
        if any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        if isinstance(module, ADAPTABLE) and not isinstance(module, nn.modules.linear.NonDynamicallyQuantizableLinear):
            names.append(name)
    return names


def apply_lora(model: nn.Module, rank: int = 8, alpha: int = 16, dropout: float = 0.0,
               targets: Sequence[str] | None = None, train_heads: bool = True) -> tuple[nn.Module, LoraReport]:
    """Wrap `model` with LoRA adapters; returns the peft model and how many parameters train."""
    from peft import LoraConfig, get_peft_model

    if rank <= 0:
        raise ConfigError(f"lora.rank: must be positive, got {rank}")
    targets = list(targets) if targets is not None else adaptable_layers(model)
    if not targets:
        raise ConfigError("lora.targets: the model has no Linear or Conv layer to adapt")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        modules_to_save=["heads"] if train_heads and hasattr(model, "heads") else None)
    adapted = get_peft_model(model, config)
    trainable, total = adapted.get_nb_trainable_parameters()
    return adapted, LoraReport(trainable=trainable, total=total, adapted_layers=len(targets))


def merge_lora(adapted: nn.Module) -> nn.Module:
    """Fold the adapters into the weights: a plain model again, as fast as the original."""
    return adapted.merge_and_unload()
