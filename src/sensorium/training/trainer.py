"""The training loop: AdamW or SGD, warm-up + cosine, clipping, accumulation, early stopping, exact resume.

Data order is a pure function of (seed, epoch) and every RNG is checkpointed at optimizer-step
boundaries, so a run stopped at step N and resumed follows the uninterrupted run exactly. Options:
bf16 autocast on CPU, convolutional encoders channels-last where measured faster (`training.layout`),
OGM-GE modality-imbalance modulation, several tasks with weighted losses,
augmentation and mixup (`training.augment`), a moving average of the weights (`training.averaging`),
and DDP replicas under torchrun.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .augment import augment_batch, mixed_targets, mixup
from .averaging import weight_average
from .checkpoint import load_checkpoint, save_checkpoint, save_weights
from .config import Config, DataConfig, ModelConfig, TrainConfig
from .distributed import DistContext, unwrap
from .evaluate import bf16_pays, classification_metrics, precision
from .layout import AS_IS, AUTO, KEEP_RATIO, EncoderLayout, LaidOut, choose_layouts, lay_out, restore_all
from .schedule import warmup_cosine

CHECKPOINT_DIR, BEST_DIR, METRICS_FILE = "checkpoint", "best", "metrics.jsonl"
CALIBRATION_FILE = "calibration.json"


def write_temperature(folder: Path, task: str, logits: Tensor, labels: Tensor) -> dict[str, Any]:
    """Fit temperature scaling (`sensorium.trust.calibration`) on the validation logits of the weights
    saved in `folder`, and store it beside them with the measures before and after."""
    from ..trust import calibration

    logits_np, labels_np = logits.double().numpy(), labels.numpy().astype(int)
    temperature = calibration.fit_temperature(logits_np, labels_np)
    record = {"task": task, "temperature": temperature, "fitted_on": "validation",
              "before": calibration.measures(calibration.softmax(logits_np), labels_np),
              "after": calibration.measures(calibration.scale(logits_np, temperature), labels_np)}
    tmp = folder / (CALIBRATION_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, folder / CALIBRATION_FILE)
    return record


def threads_for(requested: int, world_size: int = 1) -> int:
    """Torch threads for one training process: `requested` when positive; 0 (the default) every core
    this process may use, split over the replicas; -1 the cores idle now, split over the replicas.

    -1 is for a machine that is busy with other work: small models step in milliseconds, and
    intra-op threads that find their core busy spin at every barrier (on a loaded 2-core machine
    examples/avmnist.toml ran about ten times slower with 2 threads than with 1). So that guess
    counts the cores the 1-minute load average leaves free, never more than this process's share.
    On a quiet machine every core is the faster choice, hence the default.
    """
    if requested > 0:
        return requested
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if requested == 0:
        return max(1, cores // max(1, world_size))
    try:
        idle = cores - int(round(os.getloadavg()[0]))
    except OSError:  # no load average on this platform
        idle = cores
    return max(1, min(idle, cores) // max(1, world_size))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def ogm_coefficients(scores: dict[str, float], alpha: float) -> dict[str, float]:
    """OGM-GE (Peng et al. 2022): slow down a modality whose own confidence exceeds the others'.

    scores[m] = summed softmax probability of the true class from modality m alone. With two
    modalities this is the paper's rule; with more, each is compared with the mean of the rest.
    """
    coefficients = {}
    for name, score in scores.items():
        others = [s for n, s in scores.items() if n != name]
        ratio = score / max(sum(others) / len(others), 1e-8) if others else 1.0
        coefficients[name] = 1.0 - math.tanh(alpha * max(ratio - 1.0, 0.0))
    return coefficients


def drop_modalities(batch: dict[str, Any], rate: float, generator: torch.Generator | None = None) -> dict[str, Any]:
    """Modality dropout: per sample, with chance `rate`, mark one present modality absent.

    Only samples with two or more modalities present lose one, so no sample is left empty. It
    trains the fusion not to lean on the dominant modality and to cope when one is missing at
    test time; fusion methods already read absence from `present`, so nothing else changes.
    """
    names = list(batch["inputs"])
    if rate <= 0 or len(names) < 2:
        return batch
    first = batch["inputs"][names[0]]
    size = first.shape[0]
    given = batch.get("present", {})
    presence = torch.stack([given.get(m, torch.ones(size, dtype=torch.bool)).to(torch.bool).cpu() for m in names], 1)
    pick = torch.rand(size, len(names), generator=generator).masked_fill(~presence, -1.0).argmax(dim=1)
    drop = (torch.rand(size, generator=generator) < rate) & (presence.sum(dim=1) >= 2)
    presence[drop.nonzero().flatten(), pick[drop]] = False
    device = first.device
    return {**batch, "present": {**given, **{m: presence[:, i].to(device) for i, m in enumerate(names)}}}


class Trainer:
    """Trains `model` on `train_data`; writes checkpoints, best weights and metrics under `out`.

    Models that compute their own objective (contrastive alignment, see align/trainer_bridge.py) set
    `computes_loss = True`: their forward(batch) returns the loss, batch["size"] counts its samples,
    and the config may have no tasks. A train_data with `set_epoch(epoch)` is told each epoch, so it
    can plan that epoch's batches as a pure function of (seed, epoch) and resume exactly. A model
    with `after_step()` is told after every optimizer step (an exponential moving average of its
    weights, kept in its own state so checkpoints carry it).
    """

    def __init__(self, config: Config, model: nn.Module, train_data: Dataset, val_data: Dataset | None,
                 collate: Callable, out: str | Path | None = None, context: DistContext | None = None):
        self.config, self.cfg = config, config.train
        self.bf16 = bf16_pays(self.cfg.bf16, "train.bf16")  # float32 where the CPU only emulates bfloat16
        self.context = context or DistContext()
        self.model = model
        self.ddp = self.context.wrap(model)
        self.train_data, self.val_data, self.collate = train_data, val_data, collate
        self.out = Path(out) if out is not None else None
        self.tasks = {task.name: task.weight for task in config.tasks}
        self.main_task = config.tasks[0].name if config.tasks else None
        self.computes_loss = bool(getattr(model, "computes_loss", False))
        self.sampler = DistributedSampler(train_data, num_replicas=self.context.world_size, rank=self.context.rank,
                                          shuffle=True, seed=self.cfg.seed)
        batches = math.ceil(len(self.sampler) / self.cfg.batch_size)
        self.steps_per_epoch = math.ceil(batches / self.cfg.accumulate)
        self.total_steps = self.cfg.max_steps or self.cfg.epochs * self.steps_per_epoch
        if self.cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(model.parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum,
                                             weight_decay=self.cfg.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.scheduler = warmup_cosine(self.optimizer, self.cfg.warmup_steps, self.total_steps, self.cfg.min_lr_ratio)
        # train.ema: validation, RUN/best and the checkpoint use this average of the weights
        self.averaged = weight_average(model, self.cfg.ema) if self.cfg.ema > 0 else None
        self.last_validation: tuple[Tensor, Tensor] | None = None  # main-task logits and labels, last validation
        self.laid_out: list[LaidOut] | None = None  # encoders in a training memory layout; None: not chosen yet
        self.progress: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best": None, "best_epoch": -1,
                                         "best_loss": None, "bad_epochs": 0, "done": False}

    # ---- pieces -------------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, indices: list[int] | None) -> DataLoader:
        # own generator: creating an iterator must not draw from the global RNG we checkpoint
        return DataLoader(dataset, batch_size=self.cfg.batch_size, sampler=indices, shuffle=False,
                          collate_fn=self.collate, num_workers=self.cfg.num_workers,
                          generator=torch.Generator().manual_seed(self.cfg.seed))

    def _autocast(self):
        return precision(self.bf16)

    def _loss(self, logits: dict[str, Tensor], labels: dict[str, Tensor], outputs=None, present=None,
              smoothing: float = 0.0) -> Tensor:
        """The weighted tasks' cross-entropy (label-smoothed by `smoothing`: training passes
        train.label_smoothing, validation none, so validation losses stay comparable)."""
        loss = sum(weight * F.cross_entropy(logits[task].float(), labels[task], label_smoothing=smoothing)
                   for task, weight in self.tasks.items())
        if self.cfg.unimodal_loss_weight > 0 and outputs is not None:
            for here, own in unwrap(self.model).unimodal_logits(outputs, present).values():
                if here.any():
                    loss = loss + self.cfg.unimodal_loss_weight * sum(
                        weight * F.cross_entropy(own[task][here].float(), labels[task][here], label_smoothing=smoothing)
                        for task, weight in self.tasks.items())
        aux = getattr(unwrap(self.model).fusion, "balance_loss", None)
        if aux is not None and self.cfg.aux_loss_weight > 0 and unwrap(self.model).training:
            loss = loss + self.cfg.aux_loss_weight * aux.float()
        return loss

    def _ogm_active(self) -> bool:
        ogm = self.cfg.ogm_ge
        return ogm.alpha > 0 and len(unwrap(self.model).modalities) > 1 and \
            ogm.start_epoch <= self.progress["epoch"] <= ogm.end_epoch

    @torch.no_grad()
    def _unimodal_scores(self, outputs, present, labels: Tensor) -> Tensor:
        """Per modality: summed probability of the true class with only that modality present."""
        model = unwrap(self.model)
        scores = []
        for name in model.modalities:
            if name not in outputs:
                scores.append(torch.zeros(()))
                continue
            alone = present[name]
            if not alone.any():
                scores.append(torch.zeros(()))
                continue
            out = outputs[name]
            picked = type(out)(out.tokens[alone].detach(), out.mask[alone], out.pooled[alone].detach())
            logits = model.fuse({name: picked}, {name: alone[alone]})[self.main_task].float()
            scores.append(logits.softmax(1).gather(1, labels[alone][:, None]).sum())
        return torch.stack(scores)

    def _modulate(self, scores: Tensor) -> dict[str, float]:
        """Scale each encoder's gradient by its OGM coefficient, plus GE noise of the gradient's spread."""
        model = unwrap(self.model)
        scores = self.context.all_reduce_sum(scores.clone())
        coefficients = ogm_coefficients(dict(zip(model.modalities, scores.tolist())), self.cfg.ogm_ge.alpha)
        for name, coefficient in coefficients.items():
            for param in model.encoders[name].parameters():
                if param.grad is None:
                    continue
                param.grad.mul_(coefficient)
                if self.cfg.ogm_ge.noise and param.grad.numel() > 1:
                    param.grad.add_(torch.randn_like(param.grad) * (param.grad.std() + 1e-8))
        return coefficients

    def _step(self) -> float:
        if self.cfg.grad_clip > 0:
            norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip))
        else:
            norm = float("nan")
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def _lay_out(self, batch: dict[str, Any]) -> None:
        """Put the convolutional encoders in the memory layout they train fastest in (`train.layout`,
        `training.layout`), chosen once on the first batch and recorded in the progress, so a resumed
        run lays them out as the run it continues did. Not for replicas (each would time its own)."""
        self.laid_out = []
        model = unwrap(self.model)
        if self.cfg.layout == AS_IS or self.context.enabled or not hasattr(model, "encoder_arguments"):
            return
        recorded = self.progress.get("layouts")
        if recorded is None:
            keep_ratio = KEEP_RATIO if self.cfg.layout == AUTO else float("inf")
            chosen = choose_layouts(model.encoders, model.encoder_arguments(batch), self._autocast, keep_ratio)
            recorded = self.progress["layouts"] = {modality: layout.as_dict() for modality, layout in chosen.items()}
        self.laid_out = [lay_out(model.encoders[modality], EncoderLayout.from_dict(record))
                         for modality, record in recorded.items() if modality in model.encoders]

    def _save(self) -> None:
        if self.out is not None and self.context.is_main:
            save_checkpoint(self.out / CHECKPOINT_DIR, unwrap(self.model), self.optimizer, self.scheduler, self.progress,
                            self.averaged)
        self.context.barrier()

    def _log(self, record: dict[str, Any]) -> None:
        if self.out is not None and self.context.is_main:
            with (self.out / METRICS_FILE).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def answering_model(self) -> nn.Module:
        """The model that validates and is kept: the moving average of the weights when training keeps one."""
        return self.averaged.module if self.averaged is not None else unwrap(self.model)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Loss, accuracy and macro-F1 of the main task on the validation set (every rank, whole set)."""
        model = self.answering_model()
        model.eval()
        losses, outputs, labels, count = 0.0, [], [], 0
        for batch in self._loader(self.val_data, None):
            with self._autocast():
                logits = model(batch)
            losses += float(self._loss(logits, batch["labels"])) * len(batch["labels"][self.main_task])
            count += len(batch["labels"][self.main_task])
            outputs.append(logits[self.main_task].float())
            labels.append(batch["labels"][self.main_task])
        model.train()
        self.last_validation = (torch.cat(outputs), torch.cat(labels))  # the temperature is fitted on these
        predictions = [out.argmax(1) for out in outputs]
        names = getattr(self.val_data, "classes", {}).get(self.main_task)
        classes = int(model.heads[self.main_task].out_features)
        metrics = classification_metrics(torch.cat(labels).tolist(), torch.cat(predictions).tolist(),
                                         names or [str(i) for i in range(classes)])
        return {"loss": losses / max(count, 1), "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}

    def _improved(self, value: float, lower_is_better: bool, loss: float | None = None) -> bool:
        """Whether this epoch beats the best so far on the monitored metric. A tie on a metric that
        saturates (validation accuracy 1.000 after every epoch) goes by `train.tie_break`: to the lower
        validation loss (the default), or to the first epoch that reached the value ("first"), which
        keeps an earlier, less specialised model: what MultiBench's trainer keeps."""
        best = self.progress["best"]
        if best is None:
            return True
        if value == best and self.cfg.tie_break == "loss" and loss is not None \
                and self.progress.get("best_loss") is not None:
            return loss < self.progress["best_loss"]
        return value < best if lower_is_better else value > best

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self, resume: bool = False, stop_after_steps: int | None = None) -> dict[str, Any]:
        """Train to the end (or until early stopping); `stop_after_steps` simulates an interruption."""
        if self.out is not None and self.context.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.progress = load_checkpoint(self.out / CHECKPOINT_DIR, unwrap(self.model), self.optimizer, self.scheduler,
                                            self.averaged)
        self.model.train()
        timing = {"data": 0.0, "compute": 0.0, "samples": 0}
        progress_bar = self._progress_bar()
        try:
            with progress_bar:
                task = progress_bar.add_task("training", total=self.total_steps, completed=self.progress["step"])
                while not self.progress["done"] and self.progress["epoch"] < self.cfg.epochs:
                    stopped = self._epoch(timing, progress_bar, task, stop_after_steps)
                    if stopped:
                        return self._summary(timing, interrupted=True)
            return self._summary(timing, interrupted=False)
        finally:  # the model leaves as it came: contiguous weights, no layout hooks
            restore_all(self.laid_out or [])
            self.laid_out = None

    def _epoch(self, timing, progress_bar, task, stop_after_steps) -> bool:
        cfg, progress = self.cfg, self.progress
        self.sampler.set_epoch(progress["epoch"])
        if hasattr(self.train_data, "set_epoch"):
            self.train_data.set_epoch(progress["epoch"])
        indices = list(self.sampler)
        batches = math.ceil(len(indices) / cfg.batch_size)
        loader = self._loader(self.train_data, indices[progress["batch"] * cfg.batch_size:])
        started, losses, scores = time.perf_counter(), [], None
        after_step = getattr(unwrap(self.model), "after_step", None)  # e.g. an EMA of the weights
        at_start = dict(timing)  # the epoch's record reports this epoch alone, the summary the whole run
        waited = time.perf_counter()
        for batch in loader:
            fetched = time.perf_counter()
            timing["data"] += fetched - waited
            if self.laid_out is None:
                self._lay_out(batch)  # choosing counts as compute: it is part of what training costs
            progress["batch"] += 1
            last_of_group = progress["batch"] % cfg.accumulate == 0 or progress["batch"] == batches
            sync = nullcontext() if last_of_group or not self.context.enabled else self.ddp.no_sync()
            if cfg.modality_dropout > 0:
                batch = drop_modalities(batch, cfg.modality_dropout)
            if cfg.augment:
                batch = augment_batch(batch, cfg.augment)
            partners, weight = None, 1.0
            if cfg.mixup > 0 and not self.computes_loss:
                batch, partners, weight = mixup(batch, cfg.mixup)
            with sync:
                with self._autocast():
                    if self.computes_loss:
                        loss = self.ddp(batch)
                    else:
                        logits, outputs, present = self.ddp(batch, return_parts=True)
                        smoothing = cfg.label_smoothing
                        loss = self._loss(logits, batch["labels"], outputs, present, smoothing)
                        if partners is not None:  # mixup: the partners' labels take the rest of the weight
                            loss = weight * loss + (1 - weight) * self._loss(
                                logits, mixed_targets(batch["labels"], partners), outputs, present, smoothing)
                (loss / cfg.accumulate).backward()
            if not self.computes_loss and self._ogm_active():
                found = self._unimodal_scores(outputs, present, batch["labels"][self.main_task])
                scores = found if scores is None else scores + found
            losses.append(float(loss.detach()))
            timing["samples"] += int(batch["size"]) if self.computes_loss else len(batch["labels"][self.main_task])
            if last_of_group:
                if scores is not None:
                    self._modulate(scores)
                    scores = None
                self._step()
                if after_step is not None:
                    after_step()
                if self.averaged is not None:
                    self.averaged.update_parameters(unwrap(self.model))
                progress["step"] += 1
                progress_bar.update(task, completed=progress["step"],
                                    description=f"epoch {progress['epoch'] + 1} loss {np.mean(losses[-20:]):.3f}")
                out_of_steps = cfg.max_steps and progress["step"] >= cfg.max_steps
                if cfg.checkpoint_every and progress["step"] % cfg.checkpoint_every == 0 and not out_of_steps:
                    self._save()
                if stop_after_steps is not None and progress["step"] >= stop_after_steps:
                    timing["compute"] += time.perf_counter() - fetched
                    self._save()
                    return True
                if out_of_steps:
                    timing["compute"] += time.perf_counter() - fetched
                    break
            waited = time.perf_counter()
            timing["compute"] += waited - fetched
        self._end_epoch(losses, time.perf_counter() - started, {k: timing[k] - at_start[k] for k in timing})
        return False

    def _end_epoch(self, losses: list[float], seconds: float, timing: dict[str, float]) -> None:
        progress = self.progress
        record = {"epoch": progress["epoch"] + 1, "step": progress["step"], "train_loss": float(np.mean(losses)) if losses else None,
                  "lr": self.scheduler.get_last_lr()[0], "seconds": round(seconds, 3),
                  "samples_per_s": round(timing["samples"] / max(timing["data"] + timing["compute"], 1e-9), 1),
                  "data_share": round(timing["data"] / max(timing["data"] + timing["compute"], 1e-9), 3),
                  "threads": torch.get_num_threads()}
        cache = getattr(self.train_data, "cache", None)
        if cache is not None:
            record["cached_mb"] = round(cache.used_bytes / 2**20, 2)
        if self.val_data is not None and len(self.val_data):
            began = time.perf_counter()
            scores = self.validate()
            record.update({f"val_{k}": v for k, v in scores.items()})
            record["val_seconds"] = round(time.perf_counter() - began, 3)
            value, lower, loss = scores[self.cfg.metric], self.cfg.metric == "loss", scores["loss"]
        else:  # no validation set: the training loss is all there is
            value, lower = (record["train_loss"] if record["train_loss"] is not None else 0.0), True
            loss = value
        if self._improved(value, lower, loss):
            progress.update(best=value, best_epoch=progress["epoch"], best_loss=loss, bad_epochs=0)
            if self.out is not None and self.context.is_main:
                (self.out / BEST_DIR).mkdir(parents=True, exist_ok=True)
                save_weights(self.answering_model(), self.out / BEST_DIR / "model.safetensors")
                if self.last_validation is not None:
                    write_temperature(self.out / BEST_DIR, self.main_task, *self.last_validation)
        else:
            progress["bad_epochs"] += 1
        progress["epoch"] += 1
        progress["batch"] = 0
        if self.cfg.patience and progress["bad_epochs"] >= self.cfg.patience:
            progress["done"] = True
            record["early_stop"] = True
        if self.cfg.max_steps and progress["step"] >= self.cfg.max_steps:
            progress["done"] = True
        self._log(record)
        self._save()

    def _summary(self, timing: dict[str, float], interrupted: bool) -> dict[str, Any]:
        busy = timing["data"] + timing["compute"]
        return {**self.progress, "interrupted": interrupted, "bf16": self.bf16, "samples": timing["samples"],
                "data_seconds": timing["data"], "compute_seconds": timing["compute"],
                "samples_per_s": timing["samples"] / busy if busy else 0.0}

    def _progress_bar(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        disable=not (self.cfg.progress and self.context.is_main), transient=True)


def fit_own_loss(model: nn.Module, data: Dataset, collate: Callable, out: Path, train: TrainConfig,
                 resume: bool = False, stop_after_steps: int | None = None) -> dict[str, Any]:
    """Train a model that computes its own loss (`computes_loss = True`) on `data`: no tasks, no
    validation set; OUT gets checkpoints and metrics.jsonl (begun afresh unless resuming). What the
    world's captioner, detector, object reader and question parser share."""
    out = Path(out)
    if not resume:
        (out / METRICS_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(Config(data=DataConfig(), model=ModelConfig(), train=train, tasks=[]), model, data, None,
                      collate, out=out)
    return trainer.fit(resume=resume, stop_after_steps=stop_after_steps)
