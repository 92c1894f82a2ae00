"""An exponential moving average of a model's weights, kept beside the model the optimizer steps.

Averaging the weights over the last stretch of training finds a flatter point than the last
step's weights, which is known to generalise better to data unlike the training set (Izmailov et al.
2018, SWA; Cha et al. 2021, SWAD, for new domains such as an unseen speaker) and to vary less from
seed to seed. `train.ema = 0.999` turns it on; validation, the weights kept in RUN/best and the
checkpoint then use the average. torch's `AveragedModel` does the bookkeeping (a copy of the
model, its buffers averaged too so batch-norm statistics match the averaged weights); this module
supplies only the decay, warmed up as in timm's ModelEmaV3 so the first steps' average is not
dominated by the initial weights: decay_n = min(ema, (1 + n) / (10 + n)) after n updates.

Measured so far, it did not help: on AV-MNIST's unseen speaker, by leave-one-speaker-out, it moved
the mean by -0.3 and -0.2 points (docs/experiments/2026-12-07-unseen-speaker-recipes.md); a cosine
schedule that ends at a small learning rate already leaves the last weights near their average.
It stays an option for schedules that end at a high learning rate, where the last weights still
wander (not measured here).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay used at the update after `updates` earlier ones: never above `decay`, small at first."""
    return min(decay, (1 + updates) / (10 + updates))


def ema_update(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor | int], None]:
    """AveragedModel's `multi_avg_fn`: averaged <- d * averaged + (1 - d) * current, floats only;
    integer buffers (batch norm's step count) take the current value."""
    def update(averaged: list[Tensor], current: list[Tensor], updates: Tensor | int) -> None:
        rate = 1.0 - warmed_up_decay(decay, int(updates))
        for mean, now in zip(averaged, current):
            if torch.is_floating_point(mean):
                mean.lerp_(now.to(mean.dtype), rate)
            else:
                mean.copy_(now)
    return update


def weight_average(model: nn.Module, decay: float) -> AveragedModel:
    """A running average of `model`'s parameters and buffers; call `.update_parameters(model)` after
    each optimizer step and use `.module` wherever the averaged model should answer."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema decay must be in (0, 1), got {decay}")
    return AveragedModel(model, multi_avg_fn=ema_update(decay), use_buffers=True)
