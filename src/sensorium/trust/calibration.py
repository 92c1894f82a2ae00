"""Temperature scaling (Guo et al., 2017) and the measures that say whether confidence is honest.

Why temperature scaling: one parameter, fitted by likelihood on held-out examples, cannot change
which label ranks first (accuracy is untouched), and one parameter is little to fit from the few
hundred examples a user labels (vector or matrix scaling fit one or more per label). A classifier that gives probabilities is scaled through
their logarithms (softmax(log p / T) is p**(1/T), renormalised).

Measures, each computed on labelled examples the temperature was not fitted on:
- ECE: the gap between confidence and accuracy, averaged over 15 equal-width confidence bins
  weighted by their counts; the adaptive variant uses 15 equal-count bins (robust when most
  predictions sit near 1.0, as here);
- NLL: mean negative log-likelihood of the true label; Brier: mean squared error of the
  probability vector against the one-hot truth.
"""
from __future__ import annotations

import numpy as np

BINS = 15
FLOOR = 1e-12  # probabilities are clipped here before a logarithm
LOG_T_RANGE = (-4.0, 4.0)  # temperatures from e^-4 (sharper) to e^4 (flatter)


def as_logits(probs: np.ndarray) -> np.ndarray:
    """Logarithms of probabilities: logits up to a constant per row, which softmax ignores."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), FLOOR, None))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def scale(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities: softmax(logits / T)."""
    return softmax(np.asarray(logits, dtype=np.float64) / float(temperature))


def nll(probs: np.ndarray, truth: np.ndarray) -> float:
    probs, truth = np.asarray(probs, dtype=np.float64), np.asarray(truth, dtype=int)
    # a softmax of float32 logits can give the true class 1 + 1e-8: clipped at 1, so a sure, right model
    # scores exactly 0 (and + 0.0 turns -0.0 into 0.0: never "-0.0000" on screen)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(truth)), truth], FLOOR, 1.0)))) + 0.0


def brier(probs: np.ndarray, truth: np.ndarray) -> float:
    probs, truth = np.asarray(probs, dtype=np.float64), np.asarray(truth, dtype=int)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(truth)), truth] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The temperature minimising the NLL of `truth` (bounded search over log T: one smooth, convex
    problem in 1/T, so a scalar minimiser is exact enough and needs no gradients)."""
    from scipy.optimize import minimize_scalar

    logits, truth = np.asarray(logits, dtype=np.float64), np.asarray(truth, dtype=int)
    if len(truth) == 0:
        raise ValueError("fitting a temperature needs at least one labelled example")
    best = minimize_scalar(lambda log_t: nll(scale(logits, np.exp(log_t)), truth), bounds=LOG_T_RANGE,
                           method="bounded", options={"xatol": 1e-4})
    return float(np.exp(best.x))


def reliability(probs: np.ndarray, truth: np.ndarray, bins: int = BINS, adaptive: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean confidence, accuracy, count) per bin of the top label's confidence; empty bins have count 0."""
    probs, truth = np.asarray(probs, dtype=np.float64), np.asarray(truth, dtype=int)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == truth).astype(np.float64)
    if adaptive:
        order = np.argsort(confidence, kind="stable")
        groups = np.array_split(order, bins)
    else:
        which = np.minimum((confidence * bins).astype(int), bins - 1)
        groups = [np.flatnonzero(which == b) for b in range(bins)]
    count = np.array([len(g) for g in groups])
    mean_conf = np.array([confidence[g].mean() if len(g) else 0.0 for g in groups])
    accuracy = np.array([correct[g].mean() if len(g) else 0.0 for g in groups])
    return mean_conf, accuracy, count


def ece(probs: np.ndarray, truth: np.ndarray, bins: int = BINS, adaptive: bool = False) -> float:
    mean_conf, accuracy, count = reliability(probs, truth, bins, adaptive)
    return float(np.sum(count * np.abs(mean_conf - accuracy)) / max(count.sum(), 1))


def measures(probs: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy, ECE (equal-width and adaptive, 15 bins), NLL and Brier of these predictions."""
    probs, truth = np.asarray(probs, dtype=np.float64), np.asarray(truth, dtype=int)
    return {"examples": int(len(truth)), "accuracy": float(np.mean(probs.argmax(axis=1) == truth)),
            "ece": ece(probs, truth), "adaptive_ece": ece(probs, truth, adaptive=True),
            "nll": nll(probs, truth), "brier": brier(probs, truth)}


def cross_fitted(logits: np.ndarray, truth: np.ndarray, folds: int = 5, seed: int = 0
                 ) -> tuple[np.ndarray, list[float]]:
    """Each example's probabilities under a temperature fitted on the other folds: honest figures
    (and conformal scores) from the same examples that fit the final temperature."""
    logits, truth = np.asarray(logits, dtype=np.float64), np.asarray(truth, dtype=int)
    folds = max(2, min(folds, len(truth)))
    order = np.random.default_rng(seed).permutation(len(truth))
    out = np.empty_like(logits)
    temperatures = []
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part, assume_unique=True)
        temperature = fit_temperature(logits[rest], truth[rest])
        temperatures.append(temperature)
        out[part] = scale(logits[part], temperature)
    return out, temperatures
