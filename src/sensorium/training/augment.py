"""Training-time augmentation of a batch: the standard tools for hearing speakers never heard before.

A model trained on three voices learns their voices as well as the words. These perturb what a
voice changes and keep what the word fixes, on any (B, ..., F, T) array input such as a
spectrogram (frequency on the second-last axis, time on the last):

- SpecAugment masking (Park et al. 2019): `freq_masks` bands of up to `freq_mask_width` rows and
  `time_masks` spans of up to `time_mask_width` columns set to the item's mean;
- speed perturbation (Ko et al. 2015): time stretched by a factor drawn from 1 ± `time_stretch`,
  cropped or padded back to the same width;
- vocal-tract-length / pitch perturbation (Jaitly & Hinton 2013): frequencies scaled by a factor
  drawn from 1 ± `freq_warp`, rows resampled back onto the same grid;
- mixup (Zhang et al. 2018, `train.mixup` = the Beta distribution's alpha): every modality of two
  samples mixed with one weight, the loss mixed with the same weight (in the trainer).

All draws come from torch's global generator, which checkpoints save, so resuming stays exact.
Nothing here runs at evaluation.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class AugmentConfig:
    """`[train.augment.<modality>]`: what is done to that modality's training batches."""

    freq_masks: int = 0
    freq_mask_width: int = 8
    time_masks: int = 0
    time_mask_width: int = 12
    time_stretch: float = 0.0  # 0.15: speed factor in [0.85, 1.15]
    freq_warp: float = 0.0  # 0.1: frequencies scaled by [0.9, 1.1]

    @property
    def active(self) -> bool:
        return bool(self.freq_masks or self.time_masks or self.time_stretch or self.freq_warp)


def augment_batch(batch: dict[str, Any], plans: Mapping[str, AugmentConfig]) -> dict[str, Any]:
    """A copy of `batch` with each planned modality augmented (float inputs of at least 2 dims per item)."""
    inputs = dict(batch["inputs"])
    for name, plan in plans.items():
        value = inputs.get(name)
        if value is None or not plan.active or not value.is_floating_point() or value.dim() < 3:
            continue
        value = value.clone()
        if plan.time_stretch:
            value = stretch(value, _factors(value.shape[0], plan.time_stretch), axis=-1)
        if plan.freq_warp:
            value = stretch(value, _factors(value.shape[0], plan.freq_warp), axis=-2)
        fill = value.reshape(value.shape[0], -1).mean(dim=1)  # the item's mean before any mask
        value = _mask(value, plan.freq_masks, plan.freq_mask_width, -2, fill)
        value = _mask(value, plan.time_masks, plan.time_mask_width, -1, fill)
        inputs[name] = value
    return {**batch, "inputs": inputs}


def _factors(batch: int, spread: float) -> Tensor:
    return 1.0 + (torch.rand(batch) * 2 - 1) * spread


def stretch(value: Tensor, factors: Tensor, axis: int) -> Tensor:
    """Item i resampled along `axis` by factors[i], same length kept.

    A factor above 1 stretches (slower speech, lower pitch on the frequency axis): the item is read
    at positions i / factor, so its start stays put and its end falls off or is padded with the
    item's lowest value (silence in a log spectrogram).
    """
    size = value.shape[axis]
    batch = value.shape[0]
    moved = value.movedim(axis, -1)
    flat = moved.reshape(batch, -1, size)
    positions = torch.arange(size, dtype=torch.float32)[None, :] / factors[:, None]  # (B, size)
    left = positions.floor().long().clamp(0, size - 1)
    right = (left + 1).clamp(max=size - 1)
    weight = (positions - left.float()).clamp(0, 1)[:, None, :]
    rows = flat.shape[1]
    sampled = (torch.gather(flat, 2, left[:, None, :].expand(-1, rows, -1)) * (1 - weight)
               + torch.gather(flat, 2, right[:, None, :].expand(-1, rows, -1)) * weight)
    floor = flat.amin(dim=(1, 2), keepdim=True).expand_as(sampled)
    sampled = torch.where((positions > size - 1)[:, None, :], floor, sampled)
    return sampled.reshape(moved.shape).movedim(-1, axis)


def _mask(value: Tensor, count: int, width: int, axis: int, fill: Tensor) -> Tensor:
    """`count` spans of 0..width rows (or columns) per item set to `fill` (B,), the item's mean."""
    if count <= 0 or width <= 0:
        return value
    size, batch = value.shape[axis], value.shape[0]
    index = torch.arange(size)
    shape = [batch] + [1] * (value.dim() - 1)
    shape[axis] = size
    for _ in range(count):
        widths = torch.randint(0, min(width, size) + 1, (batch,))
        starts = (torch.rand(batch) * (size - widths + 1).float()).long()
        hidden = (index[None, :] >= starts[:, None]) & (index[None, :] < (starts + widths)[:, None])
        value = torch.where(hidden.reshape(shape), fill.reshape([batch] + [1] * (value.dim() - 1)), value)
    return value


def mixup(batch: dict[str, Any], alpha: float) -> tuple[dict[str, Any], Tensor, float]:
    """Each sample mixed with a shuffled partner: (mixed batch, the partners' order, weight of self).

    Float inputs are mixed (and their masks and presence joined with OR, so a modality one of the
    two lacks still counts); token ids and uint8 images cannot be averaged and are left as they are.
    """
    size = next(iter(batch["labels"].values())).shape[0]
    weight = float(torch.distributions.Beta(alpha, alpha).sample())
    weight = max(weight, 1.0 - weight)  # the sample itself dominates: its own label stays the larger part
    order = torch.randperm(size)
    inputs, masks, present = dict(batch["inputs"]), dict(batch.get("masks", {})), dict(batch.get("present", {}))
    for name, value in batch["inputs"].items():
        if not value.is_floating_point():
            continue
        here = present.get(name)
        if here is None:
            inputs[name] = weight * value + (1 - weight) * value[order]
        else:  # a missing cell holds zeros: mix where both are real, else keep whichever is real
            shape = [size] + [1] * (value.dim() - 1)
            mine, theirs = here.reshape(shape), here[order].reshape(shape)
            inputs[name] = torch.where(mine & theirs, weight * value + (1 - weight) * value[order],
                                       torch.where(mine, value, value[order]))
            present[name] = here | here[order]
        if name in masks:
            masks[name] = masks[name] | masks[name][order]
    return {**batch, "inputs": inputs, "masks": masks, "present": present}, order, weight


def mixed_targets(labels: Mapping[str, Tensor], order: Tensor) -> dict[str, Tensor]:
    return {task: value[order] for task, value in labels.items()}
