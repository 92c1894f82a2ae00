"""The catalog against a model: random sequences of add, change, touch, fail, delete, a rejected
write, a root moved (or a move refused) and a crash (the process gone without closing) leave the
same state as a plain dict would.

Why a model: each step is one transaction, so whatever order a run takes (and wherever it dies),
what is stored must be exactly the steps that completed; hypothesis searches for an order where it
is not. Derandomised, so `make test` cannot turn red by luck.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sensorium.errors import ConfigError
from sensorium.index.catalog import Catalog, FileState, NewSegment

PATHS = st.sampled_from([f"/pile/{name}" for name in ("a.txt", "b.jpg", "c.wav", "d.mp4", "e.md")])
DIM = 8


def segments_for(seed: int, count: int) -> list[NewSegment]:
    rng = np.random.default_rng(seed)
    return [NewSegment(start=float(i), end=float(i + 1), source="text", text=f"word{seed}x{i}",
                       vectors={"shared": rng.normal(size=DIM).astype(np.float32)}) for i in range(count)]


class CatalogAgainstModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="catalog-model-"))
        self.catalog = Catalog(self.folder / "catalog.db")
        self.items: dict[str, tuple[int, int, str, int]] = {}  # path -> (size, mtime, hash, segments)
        self.failures: dict[str, str] = {}

    @rule(path=PATHS, seed=st.integers(0, 1000), count=st.integers(0, 4), size=st.integers(1, 10**9))
    def add_or_change(self, path, seed, count, size):
        self.catalog.put_item(FileState(path, size, seed, f"h{seed}"), "text", None, {"seed": seed},
                              segments_for(seed, count))
        self.items[path] = (size, seed, f"h{seed}", count)
        self.failures.pop(path, None)

    @rule(path=PATHS, size=st.integers(1, 10**9), mtime=st.integers(0, 2**62))
    def touch(self, path, size, mtime):
        self.catalog.touch(path, size, mtime)
        if path in self.items:
            _, _, content, count = self.items[path]
            self.items[path] = (size, mtime, content, count)

    @rule(path=PATHS, reason=st.text(min_size=1, max_size=20))
    def fail(self, path, reason):
        self.catalog.record_failure(FileState(path, 1, 1, None), "text", reason)
        self.failures[path] = reason  # a good item already stored is kept

    @rule(paths=st.lists(PATHS, max_size=3))
    def delete(self, paths):
        self.catalog.remove_paths(paths)
        for path in paths:
            self.items.pop(path, None)
            self.failures.pop(path, None)

    @rule(path=PATHS, seed=st.integers(0, 1000))
    def rejected_write(self, path, seed):
        """A write that fails validation (a vector with a NaN, after valid segments) changes nothing."""
        bad = segments_for(seed, 2) + [NewSegment(0.0, 1.0, "text", "bad", vectors={"shared": np.full(DIM, np.nan, np.float32)})]
        try:
            self.catalog.put_item(FileState(path, 5, 5, "bad"), "text", None, {}, bad)
        except ValueError:
            return
        raise AssertionError("a NaN vector was stored")

    @rule(name=st.sampled_from(["pile", "pile-2", "m1"]), folder=st.sampled_from(["/m1", "/m2", "/m1/inner", "/pile", "/"]))
    def move_root(self, name, folder):
        """Point a root somewhere else (or name a new one): the files under it move with it, and a move
        that would make a stored file's root ambiguous is refused without changing anything."""
        before = self.catalog.root_map()
        try:
            _, moved = self.catalog.set_root(name, folder)
        except ConfigError:
            return
        new_places = {root.name: root.path for root in moved}
        remapped = {}
        for path in set(self.items) | set(self.failures):
            owner = before.owner(path)
            remapped[path] = (path if owner is None or owner.name not in new_places
                              else new_places[owner.name].rstrip("/") + "/" + path[len(owner.prefix):])
        self.items = {remapped[p]: value for p, value in self.items.items()}
        self.failures = {remapped[p]: value for p, value in self.failures.items()}

    @rule()
    def crash(self):
        """The process dies without closing: a new one opens what is on disk."""
        self.catalog = Catalog(self.folder / "catalog.db")

    @invariant()
    def same_as_the_model(self):
        assert self.catalog.paths() == set(self.items) | set(self.failures)
        for path, (size, mtime, content, _) in self.items.items():
            item = self.catalog.item(path)
            assert item is not None, path
            assert (item.size, item.mtime_ns, item.content_hash) == (size, mtime, content), path
        assert self.catalog.segment_count() == sum(count for *_, count in self.items.values())
        assert dict(self.catalog.failures()) == self.failures
        for path in self.failures:
            assert self.catalog.item_state(path) is not None, path
        assert not self.catalog.integrity_errors()

    def teardown(self):
        self.catalog.close()


CatalogAgainstModel.TestCase.settings = settings(
    derandomize=True, database=None, deadline=None, max_examples=80, stateful_step_count=25,
    suppress_health_check=[HealthCheck.too_slow])
test_catalog_matches_its_model = CatalogAgainstModel.TestCase
