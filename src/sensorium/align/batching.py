"""How pairs are put into batches for a contrastive loss: the pairs of one group (captions of one
photo, takes of one spoken word) are never each other's negatives.

In a contrastive batch every other pair is a negative. Two captions of the same photo would then
be pushed apart though they describe one thing, so a group's members are spread over different
batches (`group_batches`, `hard_batches`), and where two still meet, only the first takes part
(`unique_mask`).
"""
from __future__ import annotations

import numpy as np


def group_batches(order: np.ndarray, groups: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Spread each group's members over different batches: order by (occurrence within group, order)."""
    seen: dict = {}
    occurrence = np.empty(len(order), dtype=np.int64)
    for position, index in enumerate(order):
        occurrence[position] = seen.get(groups[index], 0)
        seen[groups[index]] = occurrence[position] + 1
    spread = order[np.lexsort((np.arange(len(order)), occurrence))]
    return [spread[i:i + batch_size] for i in range(0, len(spread), batch_size)]


def hard_batches(order: np.ndarray, groups: np.ndarray, batch_size: int, features: np.ndarray,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Half of each batch = nearest neighbours of a random anchor (in frozen left features)."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    remaining = list(order)
    batches = []
    while remaining:
        anchor = remaining[0]
        pool = np.asarray(remaining)
        near = pool[np.argsort(-(unit[pool] @ unit[anchor]))]
        chosen, used = [], set()
        for index in near:  # nearest distinct groups first
            if len(chosen) >= max(2, batch_size // 2):
                break
            if groups[index] not in used:
                chosen.append(index)
                used.add(groups[index])
        for index in rng.permutation(pool):  # then random distinct groups
            if len(chosen) >= batch_size:
                break
            if groups[index] not in used:
                chosen.append(index)
                used.add(groups[index])
        taken = set(chosen)
        remaining = [i for i in remaining if i not in taken]
        batches.append(np.asarray(chosen))
    return batches


def unique_mask(batch: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """True for the first pair of each group in the batch: a second caption of the same photo must not
    be a negative for the first, so it sits this batch out."""
    _, first = np.unique(groups[batch], return_index=True)
    mask = np.zeros(len(batch), dtype=bool)
    mask[first] = True
    return mask
