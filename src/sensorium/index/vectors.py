"""The ANN index of one embedding space, persisted as one usearch file in the collection folder.

Why usearch (benchmarks/ann_compare.py; figures in the project's benchmark notes): at 100k vectors its
HNSW answers in ~1 ms with recall@10 ~0.995, it deletes by key (faiss HNSW cannot), needs no training
(faiss IVF's centroids would go stale as a collection grows file by file), and it memory-maps a saved
index (`view`), so a search process starts without reading the whole file. Below `EXACT_BELOW`
vectors the same index is searched exhaustively (`exact=True`, ~3 ms at 10k): exact results for
small collections, no second storage format.

The file is a cache: the catalog holds every vector, and `sync_with` repairs the index after a crash
between a catalog commit and `save`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sensorium.errors import ConfigError, ReadError

if TYPE_CHECKING:
    from sensorium.index.catalog import Catalog

EXACT_BELOW = 10_000
"""Collections with fewer vectors than this are searched exhaustively (exact, and fast enough)."""

CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 64
METRICS = ("cos", "ip")


def index_path(folder: Path, space: str) -> Path:
    return Path(folder) / f"vectors-{space}.usearch"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def id_filter(allowed_ids: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A fast `allowed` predicate for a fixed set of ids (e.g. `catalog.segment_ids(kinds)`).

    Binary search on the sorted ids: ~10 us per call at 100k, where `np.isin` builds a lookup table
    over the whole id range on every call (milliseconds).
    """
    sorted_ids = np.asarray(allowed_ids, dtype=np.int64)
    if len(sorted_ids) > 1 and not bool(np.all(sorted_ids[1:] > sorted_ids[:-1])):  # sorting 100k costs ms
        sorted_ids = np.unique(sorted_ids)

    def allowed(keys: np.ndarray) -> np.ndarray:
        if len(sorted_ids) == 0:
            return np.zeros(len(keys), dtype=bool)
        pos = np.minimum(np.searchsorted(sorted_ids, keys), len(sorted_ids) - 1)
        return sorted_ids[pos] == keys

    return allowed


def _import_onnxruntime_first() -> None:
    """usearch 2.26's extension makes a later `import onnxruntime` segfault (the image expert runs
    on onnxruntime); the other order is safe, so load onnxruntime first (~0.2 s, once). usearch
    2.25 has no such clash but segfaults on a corrupt index file instead, which is worse."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass


class VectorStore:
    """Add, remove and search the vectors of one space by segment id.

    Opening is lazy: nothing is imported or read until the first call. A store that only searches
    memory-maps the file (read-only view); the first `add`/`remove` loads it into memory instead.
    A viewing store notices when a writer replaced the file and maps the new one.
    """

    def __init__(self, folder: Path, space: str, dim: int, metric: str = "cos"):
        if metric not in METRICS:
            raise ConfigError(f"vector space {space!r}: metric must be one of {METRICS}, got {metric!r}")
        if dim <= 0:
            raise ConfigError(f"vector space {space!r}: dimension must be positive, got {dim}")
        self.folder = Path(folder)
        self.space = space
        self.dim = int(dim)
        self.metric = metric
        self.path = index_path(self.folder, space)
        self._index = None
        self._viewing = False
        self._viewed_stat: tuple[int, int] | None = None
        self._dirty = False

    # ------------------------------------------------------------------ opening

    def _new_index(self):
        _import_onnxruntime_first()
        from usearch.index import Index  # imported on first use: keeps CLI start-up light
        return Index(ndim=self.dim, metric=self.metric, dtype="f32", connectivity=CONNECTIVITY,
                     expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)

    def _file_stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def _open(self, writable: bool):
        """The index, mapped read-only or loaded for writing as asked; created empty if no file."""
        if self._index is not None:
            if writable and self._viewing:
                self._index = None  # a viewed index must never be modified (usearch would crash)
            elif not writable and self._viewing and not self._dirty and self._file_stat() != self._viewed_stat:
                self._index = None  # a writer saved a newer file: map that one
            else:
                return self._index
        index = self._new_index()
        stat = self._file_stat()
        if stat is not None:
            try:
                (index.load if writable else index.view)(str(self.path))
            except Exception as exc:  # usearch raises RuntimeError/ValueError on bad files
                raise ReadError(self.path, f"unreadable vector index ({exc}); delete it to rebuild "
                                           "from the catalog") from exc
            if index.ndim != self.dim:
                raise ConfigError(f"{self.path}: index has {index.ndim} dimensions, space {self.space!r} "
                                  f"expects {self.dim}")
        self._index, self._viewing, self._viewed_stat = index, not writable and stat is not None, stat
        return index

    # ------------------------------------------------------------------ edits

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) vectors by segment id."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1) if len(ids) else vectors
        if len(ids) == 0:
            return
        if vectors.shape[1] != self.dim:
            raise ValueError(f"space {self.space!r} holds {self.dim}-d vectors, got {vectors.shape[1]}-d")
        if len(np.unique(ids)) != len(ids) or ids.min() < 0:
            raise ValueError(f"space {self.space!r}: ids must be unique and non-negative")
        index = self._open(writable=True)
        present = ids[np.asarray(index.contains(ids), dtype=bool).reshape(-1)]
        if len(present):
            index.remove(present)
        index.add(ids, np.ascontiguousarray(vectors))
        self._dirty = True

    def remove(self, ids) -> None:
        """Drop these ids; unknown ids are ignored."""
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0 or (self._index is None and self._file_stat() is None):
            return
        index = self._open(writable=True)
        index.remove(ids)
        self._dirty = True

    def save(self) -> None:
        """Write the index atomically (temp file, fsync, rename, fsync folder): never a torn file."""
        if not self._dirty:
            return
        index = self._open(writable=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp-{os.getpid()}")
        index.save(str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.folder)
        self._dirty = False

    def sync_with(self, catalog: Catalog) -> tuple[int, int]:
        """Make the index hold exactly the catalog's ids for this space; returns (added, removed).

        Needed after a crash between a catalog commit and `save`. Segment ids are never reused by
        the catalog, so an id present on both sides always has the same vector. Does not save.
        """
        wanted = catalog.vector_ids(self.space)
        have = self.ids()
        missing = np.setdiff1d(wanted, have, assume_unique=True)
        extra = np.setdiff1d(have, wanted, assume_unique=True)
        if len(extra):
            self.remove(extra)
        for start in range(0, len(missing), 10_000):  # bounded memory on a full rebuild
            ids, matrix = catalog.vectors_for(self.space, missing[start:start + 10_000])
            self.add(ids, matrix)
        return len(missing), len(extra)

    # ------------------------------------------------------------------ reading

    def ids(self) -> np.ndarray:
        """Every id in the index, sorted."""
        if self._index is None and self._file_stat() is None:
            return np.empty(0, dtype=np.int64)
        index = self._open(writable=False)
        return np.sort(np.asarray(index.keys[:], dtype=np.int64)) if len(index) else np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        if self._index is None and self._file_stat() is None:
            return 0
        return len(self._open(writable=False))

    def search(self, query: np.ndarray, k: int,
               allowed: Callable[[np.ndarray], np.ndarray] | np.ndarray | None = None) -> list[tuple[int, float]]:
        """Best `k` (segment id, cosine similarity) pairs, best first.

        `allowed` filters candidates (e.g. by kind): a predicate `ids -> bool mask`, or an array of
        the allowed ids. The search over-fetches, widening by the selectivity it observes, until it
        has `k` allowed hits or has seen the whole index.
        """
        if allowed is not None and not callable(allowed):
            allowed = id_filter(allowed)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise ValueError(f"space {self.space!r} holds {self.dim}-d vectors, query is {query.shape[0]}-d")
        if k <= 0 or (self._index is None and self._file_stat() is None):
            return []
        index = self._open(writable=False)
        size = len(index)
        if size == 0:
            return []
        exact = size < EXACT_BELOW
        fetch = min(size, k if allowed is None else max(4 * k, 64))
        while True:
            exhausted = fetch >= size
            matches = index.search(query, fetch, exact=exact or exhausted, threads=1)
            keys = np.asarray(matches.keys, dtype=np.int64)
            scores = 1.0 - np.asarray(matches.distances, dtype=np.float64)
            if allowed is not None and len(keys):
                mask = np.asarray(allowed(keys), dtype=bool)
                kept_keys, kept_scores = keys[mask], scores[mask]
            else:
                kept_keys, kept_scores = keys, scores
            if len(kept_keys) >= k or exhausted:
                return [(int(i), float(s)) for i, s in zip(kept_keys[:k], kept_scores[:k])]
            # expect the same share of allowed ids further out; 1.5x margin, at least double
            grow = 8.0 if len(kept_keys) == 0 else 1.5 * k / len(kept_keys)
            fetch = min(size, int(fetch * max(grow, 2.0)) + 1)
