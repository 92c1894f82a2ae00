"""Calibration of label-bridge image classification over COCO-mini's 80 categories (cross-validated).

    .venv/bin/python -m benchmarks.trust.coco_calibration [--folds 10] [--bootstrap 2000]

Each of the 80 photos is classified by `sensorium.classify` over the 80 COCO category names (what
`sensorium classify photo.jpg --labels person,bicycle,...` prints). Truth, two readings: the
category covering the most area in the photo (single label), or any category present counting as
right (COCO photos hold several things). The temperature is fitted on 9 folds and measured on the
10th (every photo judged under a temperature that never saw it); ECE with 15 bins and its 95%
bootstrap interval, since 80 photos make a noisy estimate.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sensorium.trust import calibration

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "coco_mini"
CACHE = ROOT / ".benchmarks-cache" / "coco-classify-80.npz"


def probabilities() -> tuple[np.ndarray, list[str], list[int], list[set[int]]]:
    """(probs (photos, 80), category names, dominant category index, categories present) (cached)."""
    instances = json.loads((DATA / "instances_train2017.json").read_text())
    names = [c["name"] for c in sorted(instances["categories"], key=lambda c: c["id"])]
    index_of = {c["id"]: names.index(c["name"]) for c in instances["categories"]}
    images = sorted(instances["images"], key=lambda im: im["id"])
    area: dict[int, dict[int, float]] = {}
    for ann in instances["annotations"]:
        per = area.setdefault(ann["image_id"], {})
        per[index_of[ann["category_id"]]] = per.get(index_of[ann["category_id"]], 0.0) + float(ann["area"])
    images = [im for im in images if area.get(im["id"])]
    dominant = [max(area[im["id"]], key=area[im["id"]].get) for im in images]
    present = [set(area[im["id"]]) for im in images]
    if CACHE.exists():
        probs = np.load(CACHE)["probs"]
    else:
        from sensorium.classification import classify

        rows = []
        for number, im in enumerate(images):
            result = classify(DATA / "images" / im["file_name"], names)
            scores = {s.label: s.score for s in result.labels}
            rows.append([scores[n] for n in names])
            print(f"\r{number + 1}/{len(images)} photos classified", end="", flush=True)
        print()
        probs = np.asarray(rows)
        CACHE.parent.mkdir(exist_ok=True)
        np.savez(CACHE, probs=probs)
    return probs, names, dominant, present


def bootstrap_ece(probs: np.ndarray, correct_truth: np.ndarray, draws: int, rng) -> tuple[float, float]:
    values = [calibration.ece(probs[i], correct_truth[i]) for i in (rng.integers(0, len(probs), len(probs))
                                                                     for _ in range(draws))]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def noise_floor(probs: np.ndarray, draws: int, rng) -> float:
    """The ECE a perfectly calibrated classifier with these confidences would show on this many
    examples: labels drawn from the probabilities themselves, ECE averaged over the draws."""
    cumulative = probs.cumsum(1)
    values = []
    for _ in range(draws):
        truth = (rng.random((len(probs), 1)) > cumulative).sum(1).clip(0, probs.shape[1] - 1)
        values.append(calibration.ece(probs, truth))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    probs, names, dominant, present = probabilities()
    rng = np.random.default_rng(0)
    print(f"{len(probs)} photos, {len(names)} categories\n")
    print("| truth | accuracy | T (mean of folds) | ECE before [95% CI] | ECE after, cross-validated [95% CI] | "
          "ECE a perfectly calibrated model would show here | NLL before / after |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for reading in ("dominant category", "any category present"):
        top = probs.argmax(1)
        if reading == "dominant category":
            truth = np.asarray(dominant)
        else:  # the top label counts as right when present: its index is the truth, else the dominant one
            truth = np.array([t if t in p else d for t, p, d in zip(top, present, dominant)])
        logits = calibration.as_logits(probs)
        honest, temperatures = calibration.cross_fitted(logits, truth, folds=args.folds)
        before, after = calibration.measures(probs, truth), calibration.measures(honest, truth)
        low_b, high_b = bootstrap_ece(probs, truth, args.bootstrap, rng)
        low_a, high_a = bootstrap_ece(honest, truth, args.bootstrap, rng)
        print(f"| {reading} | {before['accuracy']:.3f} | {np.mean(temperatures):.3f} | {before['ece']:.4f} "
              f"[{low_b:.3f}, {high_b:.3f}] | **{after['ece']:.4f}** [{low_a:.3f}, {high_a:.3f}] | "
              f"{noise_floor(honest, args.bootstrap, rng):.3f} | {before['nll']:.3f} / {after['nll']:.3f} |")


if __name__ == "__main__":
    main()
