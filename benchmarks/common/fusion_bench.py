"""What every fusion benchmark shares: one model's run, the summary over seeds, the markdown tables.

AV-MNIST and BasicMotions report the same table (accuracy mean ± std over seeds, parameters,
training time, latency per sample) and the same MultiBench robustness figures, so both build their
rows here and differ only in data and model sizes.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from sensorium.training.config import Config, config_from_dict
from sensorium.training.data import ArrayDataset, Collate
from sensorium.training.evaluate import (NOISE_LEVELS, effective_robustness, predict,
                                         relative_robustness, robustness)
from sensorium.training.model import build_model, count_parameters
from sensorium.training.trainer import Trainer, seed_everything

ROOT = Path(__file__).resolve().parents[2]


FUSED_ONLY = ("modality_dropout", "unimodal_loss_weight")  # options a one-modality model has nothing to apply to


def fusion_config(encoders: dict[str, dict], method: str, fusion_kwargs: dict, output_dim: int,
                  train: dict) -> Config:
    """The config `sensorium train` would read: array inputs, these encoders, this fusion, this schedule.

    A unimodal baseline gets the same schedule without the options that only fused models use."""
    if len(encoders) == 1:
        train = {k: v for k, v in train.items() if k not in FUSED_ONLY}
    return config_from_dict({
        "model": {"encoders": {m: dict(e) for m, e in encoders.items()},
                  "fusion": {"method": method, "output_dim": output_dim, **fusion_kwargs}},
        "data": {"modalities": {m: {"kind": "array"} for m in encoders}},
        "train": {"progress": False, **train},
    })


def add_fused_training_options(parser, modality_dropout: float, unimodal_loss: float) -> None:
    """The command-line options both fusion benchmarks share (threads and the fused models' training options)."""
    parser.add_argument("--modality-dropout", type=float, default=modality_dropout,
                        help="train.modality_dropout of every fused model (unimodal models have nothing to drop)")
    parser.add_argument("--unimodal-loss", type=float, default=unimodal_loss,
                        help="train.unimodal_loss_weight of every fused model (0 = the fused loss alone)")
    parser.add_argument("--threads", type=int, default=1)


def only(dataset: ArrayDataset, modalities: list[str]) -> ArrayDataset:
    return ArrayDataset({m: dataset.inputs[m] for m in modalities}, dataset.targets)


def batches_of(dataset: ArrayDataset, size: int = 256) -> list[dict]:
    """The test set as a list of collated batches (robustness walks it once per setting)."""
    return [Collate()([dataset[i] for i in range(s, min(s + size, len(dataset)))]) for s in range(0, len(dataset), size)]


def latency_ms(model, sample_batch: dict, repeats: int = 30) -> float:
    """Median wall time of one forward pass on a single sample, one thread."""
    model.eval()
    single = {"inputs": {m: v[:1] for m, v in sample_batch["inputs"].items()}, "masks": {}, "present": {}}
    times = []
    with torch.no_grad():
        for _ in range(repeats + 3):
            start = time.perf_counter()
            model(single)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[3:])


def run_model(name: str, modalities: list[str], config: Config, classes: int, train: ArrayDataset,
              test_batches: list[dict], seed: int, levels: tuple[float, ...] = NOISE_LEVELS,
              latency_repeats: int = 30) -> dict:
    """Train one model from `config` (seeded), then score it clean, under noise and with a modality missing.

    `levels` and `latency_repeats` let a quick run score fewer points; the full runs keep the defaults.
    """
    seed_everything(seed)
    model = build_model(config, {"label": classes})
    trainer = Trainer(config, model, only(train, modalities), None, Collate())
    started = time.perf_counter()
    summary = trainer.fit()
    train_seconds = time.perf_counter() - started
    batches = [{**b, "inputs": {m: b["inputs"][m] for m in modalities}} for b in test_batches]
    logits, labels = predict(model, batches)
    accuracy = float((logits["label"].argmax(1) == labels["label"]).float().mean())
    scored = time.perf_counter()
    robust = robustness(model, batches, modalities, "label", levels=levels, seed=seed)
    latency = latency_ms(model, batches[0], latency_repeats)
    return {"name": name, "seed": seed, "accuracy": accuracy, "parameters": count_parameters(model),
            "train_seconds": train_seconds, "score_seconds": time.perf_counter() - scored, "latency_ms": latency,
            "levels": tuple(levels),
            "samples_per_s": summary["samples_per_s"], "data_seconds": summary["data_seconds"],
            "compute_seconds": summary["compute_seconds"], "noise": robust["noise"], "missing": robust["missing"]}


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def summarise(runs: list[dict]) -> dict[str, dict]:
    """Runs grouped by model name: accuracies per seed, mean costs, mean robustness curves."""
    by_name: dict[str, list[dict]] = {}
    for run in runs:
        by_name.setdefault(run["name"], []).append(run)
    table = {}
    for name, group in by_name.items():
        curves = {m: np.mean([r["noise"][m] for r in group], axis=0) for m in group[0]["noise"]}
        missing = {m: float(np.mean([r["missing"][m] for r in group])) for m in group[0]["missing"]}
        levels = group[0].get("levels", NOISE_LEVELS)
        table[name] = {
            "levels": levels, "accuracies": [r["accuracy"] for r in group], "parameters": group[0]["parameters"],
            "train_seconds": statistics.mean(r["train_seconds"] for r in group),
            "latency_ms": statistics.mean(r["latency_ms"] for r in group),
            "samples_per_s": statistics.mean(r["samples_per_s"] for r in group),
            "data_share": statistics.mean(r["data_seconds"] / max(r["data_seconds"] + r["compute_seconds"], 1e-9)
                                          for r in group),
            "curves": curves, "missing": missing,
            "relative": {m: relative_robustness(c, levels) for m, c in curves.items()},
        }
    late = table.get("fusion: late")
    for row in table.values():
        row["effective"] = {m: effective_robustness(c, late["curves"][m]) if late and m in late["curves"] else None
                            for m, c in row["curves"].items()}
    return table


def best_unimodal(table: dict[str, dict]) -> float:
    return max(statistics.mean(r["accuracies"]) for n, r in table.items() if n.endswith("only"))


def beats_label(accuracy: float, best_single: float) -> str:
    """'yes' / '**no**'; a tie at 100% is its own answer, since no model can beat a perfect score."""
    if accuracy > best_single:
        return "yes"
    return "tie at 100% (ceiling)" if accuracy == best_single == 1.0 else "**no**"


def markdown(heading: str, table: dict[str, dict]) -> list[str]:
    """The accuracy/cost table and the robustness table, under a '### heading'."""
    best_single = best_unimodal(table)
    lines = [f"### {heading}", "",
             "| model | accuracy % | beats best unimodal | parameters | train s | latency ms/sample | train samples/s "
             "| data-loading share |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in table.items():
        beats = "-" if name.endswith("only") else beats_label(statistics.mean(row["accuracies"]), best_single)
        lines.append(f"| {name} | {mean_std(row['accuracies'])} | {beats} | {row['parameters']:,} | "
                     f"{row['train_seconds']:.1f} | {row['latency_ms']:.2f} | {row['samples_per_s']:.0f} | "
                     f"{100 * row['data_share']:.1f}% |")
    levels = next(iter(table.values()))["levels"]
    lines += ["", "Robustness (accuracy %, mean over seeds): Gaussian noise of std = level x the input's std on one "
              "modality; relative = area under the curve over levels 0-1 (MultiBench relative robustness, "
              "unnormalised); effective = summed accuracy kept above late fusion's curve shifted to the same clean "
              "accuracy (MultiBench effective robustness, unnormalised); missing = that modality absent at test time.",
              "", "| model | noisy modality | " + " | ".join(f"{x:g}" for x in levels)
              + " | relative | effective | missing |", "|---|---|" + "---|" * (len(levels) + 3)]
    for name, row in table.items():
        for m, curve in row["curves"].items():
            effective = row["effective"][m]
            missing = row["missing"].get(m)
            lines.append(f"| {name} | {m} | " + " | ".join(f"{100 * a:.1f}" for a in curve)
                         + f" | {row['relative'][m]:.3f} | {'-' if effective is None else f'{effective:+.3f}'} | "
                         + ("-" if missing is None else f"{100 * missing:.1f}") + " |")
    return lines + [""]
