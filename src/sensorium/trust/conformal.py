"""Prediction sets with a coverage guarantee: split conformal classification, marginal or Mondrian.

Given calibrated probabilities on n labelled examples exchangeable with the ones to come, the set
{labels y : 1 - p(y) <= q}, with q the ceil((n + 1)(1 - alpha))-th smallest calibration score
1 - p(true), holds the true label with probability at least 1 - alpha (Vovk et al.; Angelopoulos &
Bates, "A gentle introduction", 2021). Mondrian (class-conditional) keeps one threshold per
label, from the examples of that label, so every label gets the coverage, not only the average
(a hard label then gets larger sets instead of being missed).

Why written here: crepes and MAPIE do this and far more, but crepes brings pandas into the query
path and MAPIE wants a scikit-learn estimator to wrap, while Sensorium already has probabilities;
the method is the few lines below, tested against its guarantee (tests/test_trust.py).
The guarantee needs exchangeability: a new speaker or camera breaks it (measured in BENCHMARKS.md).
"""
from __future__ import annotations

import math

import numpy as np


def scores(probs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Nonconformity of each labelled example: 1 - the probability given to its true label."""
    probs, truth = np.asarray(probs, dtype=np.float64), np.asarray(truth, dtype=int)
    return 1.0 - probs[np.arange(len(truth)), truth]


def threshold(calibration_scores: np.ndarray, confidence: float) -> float:
    """The conformal quantile: +inf (every label) when too few examples back the confidence asked."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    ordered = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    rank = math.ceil((len(ordered) + 1) * confidence)
    return float(ordered[rank - 1]) if rank <= len(ordered) else math.inf


class ConformalSets:
    """Thresholds fitted on calibration examples; `sets(probs, confidence)` for new ones."""

    def __init__(self, calibration_scores: np.ndarray, calibration_truth: np.ndarray, labels: int,
                 mondrian: bool = False):
        self.scores = np.asarray(calibration_scores, dtype=np.float64)
        self.truth = np.asarray(calibration_truth, dtype=int)
        self.labels = int(labels)
        self.mondrian = mondrian

    def thresholds(self, confidence: float) -> np.ndarray:
        """One threshold per label (all equal unless Mondrian)."""
        if not self.mondrian:
            return np.full(self.labels, threshold(self.scores, confidence))
        return np.array([threshold(self.scores[self.truth == label], confidence) for label in range(self.labels)])

    def member(self, probs: np.ndarray, confidence: float, nonempty: bool = False) -> np.ndarray:
        """Boolean (n, labels): which labels each example's set holds. A set can be empty: when the
        classifier is right more often than asked, its least sure answers need not be kept to reach
        the coverage (forcing the best guess in would overshoot it); an empty set means "uncertain".

        `nonempty` keeps the best guess in every set: coverage is then at least the accuracy, which
        holds up far better than the confidence scores when inputs shift (a new speaker: 0.56 ->
        0.96 on FSDD's held-out speaker, BENCHMARKS.md), at the price of covering more than asked
        on data like the calibration's."""
        probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
        inside = (1.0 - probs) <= self.thresholds(confidence)[None, :]
        if nonempty:
            inside[np.arange(len(probs)), probs.argmax(axis=1)] = True
        return inside

    def sets(self, probs: np.ndarray, confidence: float, nonempty: bool = False) -> list[list[int]]:
        """Each example's label set, most probable first."""
        probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
        inside = self.member(probs, confidence, nonempty)
        return [[int(j) for j in np.argsort(-row) if keep[j]] for row, keep in zip(probs, inside)]


def coverage(member: np.ndarray, truth: np.ndarray) -> float:
    """Share of examples whose set holds their true label."""
    truth = np.asarray(truth, dtype=int)
    return float(np.mean(member[np.arange(len(truth)), truth]))


def risk_coverage(probs: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Selective classification: answering only the most confident share c of examples, the accuracy
    on those. Returns (coverage, accuracy) from the single most confident example to all of them."""
    probs, truth = np.asarray(probs, dtype=np.float64), np.asarray(truth, dtype=int)
    order = np.argsort(-probs.max(axis=1), kind="stable")
    correct = (probs.argmax(axis=1) == truth)[order]
    answered = np.arange(1, len(truth) + 1)
    return answered / len(truth), np.cumsum(correct) / answered


def accuracy_at_coverage(probs: np.ndarray, truth: np.ndarray, share: float) -> float:
    covered, accuracy = risk_coverage(probs, truth)
    return float(accuracy[max(0, math.ceil(share * len(covered)) - 1)])
