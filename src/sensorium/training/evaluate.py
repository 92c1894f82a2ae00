"""Scores for a trained model: accuracy, macro-F1, per-class figures, and robustness.

Robustness follows MultiBench (Liang et al. 2021): accuracy under increasing noise on one modality
at a time, and with one modality missing at test time. Relative robustness is the area under the
accuracy-vs-noise curve; effective robustness is the accuracy kept beyond what a late-fusion
baseline with the same clean accuracy would keep.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from torch import Tensor, nn

from ..cpu import native_bf16

NOISE_LEVELS = tuple(round(0.1 * i, 1) for i in range(11))  # MultiBench's 0, 0.1, ..., 1.0


def classification_metrics(labels: Sequence[int], predictions: Sequence[int], class_names: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro-F1 and per-class precision / recall / F1 / support."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    indices = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=indices, zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=indices, average="macro", zero_division=0)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(class_names)},
    }


EMULATED_BF16 = "SENSORIUM_EMULATED_BF16"  # "1": keep bfloat16 even where the CPU only emulates it


def bf16_pays(asked: bool, setting: str) -> bool:
    """Whether bf16 autocast runs when SETTING (e.g. "train.bf16") asks for it: only on CPUs with bfloat16
    instructions (sensorium.cpu.native_bf16). Elsewhere it is emulated, 3.1x slower than float32 where we
    measured it, so this warns and answers False (float32), unless SENSORIUM_EMULATED_BF16=1 keeps bfloat16
    (to reproduce a bf16 run's numbers exactly)."""
    if not asked or native_bf16() or os.environ.get(EMULATED_BF16) == "1":
        return asked
    warnings.warn(f"{setting}: this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), where bfloat16 "
                  f"is emulated and slower than float32; running in float32 ({EMULATED_BF16}=1 keeps bfloat16)",
                  RuntimeWarning, stacklevel=3)
    return False


def precision(bf16: bool):
    """The context a model runs in: bf16 autocast (convolutions and matrix products in bfloat16, where
    CPUs with AMX or AVX-512 BF16 are 1.5-2x faster) or plain float32. Training and scoring share it,
    so a model trained in bf16 is scored as it was trained."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


@contextmanager
def inference_precision(bf16: bool):
    """`precision(bf16)` with no autograd bookkeeping: how `predict` runs a model."""
    with torch.inference_mode(), precision(bf16):
        yield


@torch.inference_mode()  # no autograd bookkeeping at all: scores are never differentiated
def predict(model: nn.Module, batches: Iterable[dict[str, Any]],
            transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
            bf16: bool = False) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Logits and labels per task over all batches; `transform` may corrupt each batch first."""
    model.eval()
    logits: dict[str, list[Tensor]] = {}
    labels: dict[str, list[Tensor]] = {}
    for batch in batches:
        if transform is not None:
            batch = transform(batch)
        with precision(bf16):
            outputs = model(batch)
        for task, out in outputs.items():
            logits.setdefault(task, []).append(out.float())
            labels.setdefault(task, []).append(batch["labels"][task])
    return ({t: torch.cat(v) for t, v in logits.items()}, {t: torch.cat(v) for t, v in labels.items()})


def add_noise(batch: dict[str, Any], modality: str, level: float, generator: torch.Generator) -> dict[str, Any]:
    """A copy of `batch` with noise of relative strength `level` on one modality.

    Float inputs get Gaussian noise with std = level x the input's own std; uint8 images are
    scaled to [0, 1] first and clipped back; token ids are replaced by random ids with probability
    `level` (padding kept).
    """
    if modality not in batch["inputs"] or level == 0:
        return batch
    value = batch["inputs"][modality]
    if value.dtype == torch.long:
        swap = torch.rand(value.shape, generator=generator) < level
        random_ids = torch.randint(1, int(value.max()) + 1, value.shape, generator=generator)
        noisy = torch.where(swap & (value != 0), random_ids, value)
    else:
        clean = value.float() / 255.0 if value.dtype == torch.uint8 else value.float()
        scale = clean.std().clamp(min=1e-6)
        noisy = clean + level * scale * torch.randn(clean.shape, generator=generator)
        if value.dtype == torch.uint8:
            noisy = noisy.clamp(0.0, 1.0)
    return {**batch, "inputs": {**batch["inputs"], modality: noisy}}


def drop_modality(batch: dict[str, Any], modality: str) -> dict[str, Any]:
    """A copy of `batch` with `modality` missing for every sample."""
    return {**batch, "inputs": {k: v for k, v in batch["inputs"].items() if k != modality},
            "masks": {k: v for k, v in batch.get("masks", {}).items() if k != modality},
            "present": {k: v for k, v in batch.get("present", {}).items() if k != modality}}


def accuracy(model: nn.Module, batches: Sequence[dict[str, Any]], task: str, transform=None, bf16: bool = False) -> float:
    logits, labels = predict(model, batches, transform, bf16)
    return float((logits[task].argmax(1) == labels[task]).float().mean())


def robustness(model: nn.Module, batches: Sequence[dict[str, Any]], modalities: Sequence[str], task: str,
               levels: Sequence[float] = NOISE_LEVELS, seed: int = 0, bf16: bool = False) -> dict[str, Any]:
    """{"noise": {modality: [accuracy per level]}, "missing": {modality: accuracy}, "levels": [...]}.

    `batches` is a list (it is walked once per setting); the noise is seeded, so repeat calls agree.
    """
    result: dict[str, Any] = {"levels": list(levels), "noise": {}, "missing": {}}
    for modality in modalities:
        curve = []
        for level in levels:
            generator = torch.Generator().manual_seed(seed)
            curve.append(accuracy(model, batches, task, lambda b: add_noise(b, modality, level, generator), bf16))
        result["noise"][modality] = curve
        if len(modalities) > 1:
            result["missing"][modality] = accuracy(model, batches, task, lambda b: drop_modality(b, modality), bf16)
    return result


def relative_robustness(curve: Sequence[float], levels: Sequence[float] = NOISE_LEVELS) -> float:
    """Area under accuracy vs noise level (trapezoids), as MultiBench's relative robustness."""
    curve, levels = np.asarray(curve, dtype=float), np.asarray(levels, dtype=float)
    if curve.shape != levels.shape:
        raise ValueError(f"{len(curve)} accuracies for {len(levels)} noise levels")
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(levels) / 2))


def effective_robustness(curve: Sequence[float], baseline: Sequence[float]) -> float:
    """MultiBench's effective robustness: sum over levels of accuracy above the baseline's curve
    shifted to start at this model's clean accuracy (positive = degrades more gracefully)."""
    f, lf = np.asarray(curve, dtype=float), np.asarray(baseline, dtype=float)
    if f.shape != lf.shape:
        raise ValueError(f"curve has {len(f)} points, baseline {len(lf)}")
    return float(np.sum(f - (lf + (f[0] - lf[0]))))


def max_min_normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """Scale scores of several methods to [0, 1], as MultiBench reports both robustness figures."""
    values = np.asarray(list(scores.values()), dtype=float)
    span = values.max() - values.min()
    return {k: float((v - values.min()) / span) if span > 0 else 1.0 for k, v in scores.items()}
