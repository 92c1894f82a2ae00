"""Retrieval recall for aligned spaces, when several queries can own the same gallery item."""
from __future__ import annotations

import numpy as np


def ranks_text_to_image(scores: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """scores (queries, gallery); owner[q] = gallery index of query q. 0 = ranked first (ties count for it)."""
    own = scores[np.arange(len(owner)), owner]
    return (scores > own[:, None]).sum(axis=1)


def ranks_image_to_text(scores: np.ndarray, owner: np.ndarray, images: np.ndarray) -> np.ndarray:
    """For each gallery item in `images`, the rank of its best own caption among all captions."""
    ranks = []
    for image in images:
        column = scores[:, image]
        ranks.append(int((column > column[owner == image].max()).sum()))
    return np.asarray(ranks)


def recall(ranks: np.ndarray, ks=(1, 5, 10)) -> dict[int, float]:
    return {k: float((ranks < k).mean()) for k in ks}
