"""Pair groups are never each other's negatives: the batch planners and the mask, tested directly."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.align.batching import group_batches, hard_batches, unique_mask


def _groups(rng, pairs=60, groups=15) -> np.ndarray:
    return rng.integers(0, groups, size=pairs)  # ~4 captions per photo, uneven


@pytest.mark.parametrize("seed", range(5))
def test_group_batches_cover_every_pair_once_and_mask_leaves_one_pair_per_group(seed):
    rng = np.random.default_rng(seed)
    groups = _groups(rng)
    order = rng.permutation(len(groups))
    batches = group_batches(order, groups, batch_size=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(groups)))
    assert all(len(b) <= 8 for b in batches)
    # spreading puts a group's members into different batches as long as distinct groups remain
    early = batches[: len(np.unique(groups)) // 8]
    assert all(len(set(groups[b].tolist())) == len(b) for b in early)
    for batch in batches:
        mask = unique_mask(batch, groups)
        kept = groups[batch][mask]
        assert len(set(kept.tolist())) == len(kept) == len(set(groups[batch].tolist()))


@pytest.mark.parametrize("seed", range(3))
def test_hard_batches_never_hold_two_pairs_of_one_group_and_cover_everything(seed):
    rng = np.random.default_rng(seed)
    groups = _groups(rng)
    features = rng.normal(size=(len(groups), 12)).astype(np.float32)
    batches = hard_batches(rng.permutation(len(groups)), groups, 8, features, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(groups)))
    for batch in batches:
        assert len(set(groups[batch].tolist())) == len(batch)


def test_unique_mask_keeps_the_first_pair_of_each_group():
    groups = np.asarray([7, 7, 3, 9, 3, 7])
    batch = np.asarray([0, 1, 2, 3, 4, 5])
    assert unique_mask(batch, groups).tolist() == [True, False, True, True, False, False]
