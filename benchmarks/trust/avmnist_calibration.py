"""Calibration and conformal coverage of AV-MNIST fusion models trained with `sensorium.training`.

    .venv/bin/python -m benchmarks.trust.avmnist_calibration [--methods late,gated] [--seeds 3] [--epochs 10]

The data and models are benchmarks/quality/avmnist.py's (PCA-degraded MNIST + FSDD log-mel, 2x2
pooled; image_cnn encoders). 15% of the training recordings are held back as the validation split,
on which the Trainer selects the best epoch and fits temperature scaling (best/calibration.json,
what `sensorium train` writes). The test split is never used for any choice: ECE, NLL and Brier
before and after that temperature, and coverage of 90% conformal sets calibrated on the validation
split, are measured on it. Protocols: conventional (unseen takes of seen speakers, exchangeable
with validation) and held-out speaker (nicolas: exchangeability broken).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.quality.avmnist import (SPEAKERS, TEST_PAIRS, UNIMODAL_LOSS, config_for, fsdd_spectrograms,
                                        mnist_pca, paired, split_recordings)
from sensorium.training.checkpoint import load_weights
from sensorium.training.data import Collate
from sensorium.training.evaluate import predict
from sensorium.training.model import build_model
from sensorium.training.trainer import Trainer, seed_everything
from sensorium.trust import calibration, conformal

VALIDATION_SHARE = 0.15


def batches(dataset, size: int = 256) -> list[dict]:
    return [Collate()([dataset[i] for i in range(s, min(s + size, len(dataset)))]) for s in range(0, len(dataset), size)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="late,gated")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--protocols", default="conventional,held_out_speaker")
    args = parser.parse_args()
    torch.set_num_threads(2)
    fsdd, mnist = fsdd_spectrograms(), mnist_pca()
    print("| protocol | model | seed | accuracy | T | ECE before | ECE after | adaptive ECE after | NLL before / after "
          f"| Brier before / after | coverage of {args.confidence:.0%} sets | mean set size |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary: dict[tuple[str, str], list[dict]] = {}
    groups: dict[tuple[str, str, int], list[tuple[float, float, float]]] = {}
    for protocol in args.protocols.split(","):
        train_rec, test_rec = split_recordings(fsdd, protocol)
        rng = np.random.default_rng(0)
        shuffled = rng.permutation(train_rec)
        cut = int(len(shuffled) * VALIDATION_SHARE)
        val_rec, fit_rec = np.sort(shuffled[:cut]), np.sort(shuffled[cut:])
        spectra = fsdd["spectrograms"][fit_rec]
        mean, std = float(spectra.mean()), float(spectra.std())
        train = paired(fsdd, fit_rec, mnist["train"], mnist["y_train"], 1, mean, std, rng)
        validation = paired(fsdd, val_rec, mnist["train"], mnist["y_train"], 1, mean, std, rng)
        test = paired(fsdd, test_rec, mnist["test"], mnist["y_test"], TEST_PAIRS, mean, std, rng)
        val_batches, test_batches = batches(validation), batches(test)
        for method in args.methods.split(","):
            for seed in range(args.seeds):
                config = config_for(["image", "audio"], method, args.epochs, seed, 32, 0.0, UNIMODAL_LOSS)
                seed_everything(seed)
                model = build_model(config, {"label": 10})
                with tempfile.TemporaryDirectory() as out:
                    Trainer(config, model, train, validation, Collate(), out=Path(out)).fit()
                    stored = json.loads((Path(out) / "best" / "calibration.json").read_text())
                    load_weights(model, Path(out) / "best" / "model.safetensors")
                temperature = stored["temperature"]
                logits, labels = predict(model, test_batches)
                raw, truth = logits["label"].double().numpy(), labels["label"].numpy()
                before, after = calibration.softmax(raw), calibration.scale(raw, temperature)
                val_logits, val_labels = predict(model, val_batches)
                val_scaled = calibration.scale(val_logits["label"].double().numpy(), temperature)
                sets = conformal.ConformalSets(conformal.scores(val_scaled, val_labels["label"].numpy()),
                                               val_labels["label"].numpy(), 10).member(after, args.confidence)
                m_before, m_after = calibration.measures(before, truth), calibration.measures(after, truth)
                row = {"accuracy": m_after["accuracy"], "ece_before": m_before["ece"], "ece_after": m_after["ece"],
                       "coverage": conformal.coverage(sets, truth), "size": float(sets.sum(1).mean())}
                summary.setdefault((protocol, method), []).append(row)
                who = np.repeat(fsdd["speakers"][test_rec], TEST_PAIRS)  # `paired` keeps recordings in order
                for speaker in np.unique(who) if len(np.unique(who)) > 1 else []:
                    mine = who == speaker
                    groups.setdefault((protocol, method, int(speaker)), []).append(
                        (1 - np.mean(after[mine].argmax(1) == truth[mine]), calibration.ece(after[mine], truth[mine]),
                         conformal.coverage(sets[mine], truth[mine])))
                print(f"| {protocol} | {method} | {seed} | {m_after['accuracy']:.3f} | {temperature:.3f} | "
                      f"{m_before['ece']:.4f} | **{m_after['ece']:.4f}** | {m_after['adaptive_ece']:.4f} | "
                      f"{m_before['nll']:.4f} / {m_after['nll']:.4f} | {m_before['brier']:.4f} / {m_after['brier']:.4f} | "
                      f"{row['coverage']:.3f} | {row['size']:.2f} |", flush=True)
    print("\n| protocol | model | accuracy | ECE before | ECE after | coverage | mean set size |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (protocol, method), rows in summary.items():
        cell = {k: (np.mean([r[k] for r in rows]), np.std([r[k] for r in rows])) for k in rows[0]}
        print(f"| {protocol} | {method} | " + " | ".join(f"{m:.4f} ± {s:.4f}" if k.startswith("ece") else f"{m:.3f} ± {s:.3f}"
                                                         for k, (m, s) in cell.items()) + " |")
    if groups:
        print("\n| protocol | model | test speaker | error rate | ECE after | coverage |")
        print("|---|---|---|---:|---:|---:|")
        for (protocol, method, speaker), rows in sorted(groups.items()):
            error, ece, covered = np.mean(rows, axis=0)
            print(f"| {protocol} | {method} | {SPEAKERS[speaker]} | {error:.3f} | {ece:.4f} | {covered:.3f} |")


if __name__ == "__main__":
    main()
