"""Classifying many clips together: each clip's label scores hear from the clips that sound like it.

Zero-shot scores for one clip know nothing of the others. When a user classifies a folder, the
same word said by the same voice recurs, and those clips sound alike (their native audio vectors
are close) even where the decoder is unsure of one of them. `agree` lets each clip's nearest
neighbours in the batch vote, weighted by how close they are, and repeats a few times so
confident clips can carry unsure ones (label propagation, Zhou et al. 2004, on a k-NN graph).

Only neighbours closer than `AGREE_MIN_COSINE` vote, so a small batch of unrelated clips barely
moves anything. The constants were chosen on FSDD speakers george, jackson and lucas only, by log-loss
averaged over random batches of 2 to 2,000 clips, with the rule that no batch size may lose dev accuracy
(benchmarks/quality/fsdd_zeroshot.py --together); nicolas was held out.
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax

AGREE_NEIGHBOURS = 5
AGREE_WEIGHT = 8.0
AGREE_MIN_COSINE = 0.8
AGREE_ROUNDS = 3


def agree(log_probs: np.ndarray, vectors: np.ndarray, neighbours: int = AGREE_NEIGHBOURS,
          weight: float = AGREE_WEIGHT, min_cosine: float = AGREE_MIN_COSINE,
          rounds: int = AGREE_ROUNDS) -> np.ndarray:
    """(N, C) log-probabilities of N clips over C labels, (N, D) unit vectors -> (N, C) log-probabilities.

    Each round: a clip's score = its own + `weight` x the mean over its `neighbours` nearest clips
    of (closeness x their current probabilities), closeness = (cosine - min_cosine) / (1 - min_cosine)
    clipped at 0. A clip's own opinion always stays in; a batch of one is returned unchanged.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    if log_probs.ndim != 2 or vectors.ndim != 2 or len(log_probs) != len(vectors):
        raise ValueError(f"agree: need (N, C) scores and (N, D) vectors, got {log_probs.shape} and {vectors.shape}")
    count = len(log_probs)
    if count < 2:
        return log_softmax(log_probs, axis=1)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(neighbours, count - 1)
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    closeness = np.clip((np.take_along_axis(similarity, nearest, axis=1) - min_cosine) / (1.0 - min_cosine), 0.0, None)
    own = log_softmax(log_probs, axis=1)
    scores = own
    for _ in range(rounds):
        votes = (closeness[..., None] * softmax(scores, axis=1)[nearest]).sum(axis=1) / k
        scores = log_softmax(own + weight * votes, axis=1)
    return scores
