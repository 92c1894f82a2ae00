"""The ANN index of one embedding space, persisted as usearch files (shards) in the collection folder.

Why usearch (benchmarks/speed/ann_compare.py; figures in the project's benchmark notes): at 100k vectors its
HNSW answers in ~1 ms with recall@10 ~0.995, it deletes by key (faiss HNSW cannot), needs no training
(faiss IVF's centroids would go stale as a collection grows file by file), and it memory-maps a saved
index (`view`), so a search process starts without reading the whole file. Below `EXACT_BELOW`
vectors the same index is searched exhaustively (`exact=True`, ~3 ms at 10k): exact results for
small collections, no second storage format.

Why shards: a usearch index is written in memory, so one index per space made indexing memory grow
with the collection (~9.5 KB per photo) and every periodic save rewrite the whole file. With shards
of about `SHARD_BYTES`, a writer holds only the newest shard; searching maps them all, several at
once. After removals, sparse shards are merged, since a shard costs a search as much half empty as full.

The files are a cache: the catalog holds every vector, and `sync_with` repairs the index after a crash
between a catalog commit and `save`.
"""
from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


SHARD_BYTES = 128 * 2**20
"""Float32 vector bytes per shard: what indexing holds in memory for a space, whatever its size.

Each shard searched costs a full HNSW descent (~0.5-1 ms), so this is memory against latency: at
100k 384-d vectors one file answered in 1.39 ms, 128 MiB shards (2) in 2.40, 64 MiB (3) in 2.97 and
32 MiB (5) in 4.96 ms (benchmarks/speed/query_latency.py --shard-mib). The warm text query has a 15 ms
budget at 100k vectors and the text encoder alone took 10.3 ms p50 of it in a profiled run; 128 MiB
keeps indexing under ~150 MB per space, well inside its 1.5 GB budget with the models. Shards are
searched in parallel (`SEARCH_THREADS`): 19 shards took 10.8 ms instead of 16.1 on 2 cores."""
MIN_SHARD_VECTORS = 1024

SEARCH_THREADS = os.cpu_count() or 1
"""Shards searched at once. usearch lets go of the GIL while it searches, so a query over many shards
(a large collection) takes about 1/threads of the time it takes one shard after another."""

_SPACE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def valid_space_name(space: str) -> bool:
    """A space's name becomes part of file names: letters, digits, '-' and '_' only."""
    return bool(_SPACE_NAME.fullmatch(space))


def check_space(space: str, dim: int, metric: str) -> None:
    """ConfigError naming the space unless its name, dimension and metric can make a store."""
    if metric not in METRICS:
        raise ConfigError(f"vector space {space!r}: metric must be one of {METRICS}, got {metric!r}")
    if dim <= 0:
        raise ConfigError(f"vector space {space!r}: dimension must be positive, got {dim}")
    if not valid_space_name(space):
        raise ConfigError(f"vector space {space!r}: a name is letters, digits, '-' and '_' only")


def sync_store(store, catalog: Catalog) -> tuple[int, int]:
    """Make a store (any layout) hold exactly the catalog's ids for its space; (added, removed).
    The catalog never reuses a segment id, so an id on both sides has the same vector."""
    wanted = catalog.vector_ids(store.space)
    have = store.ids()
    missing = np.setdiff1d(wanted, have, assume_unique=True)
    extra = np.setdiff1d(have, wanted, assume_unique=True)
    if len(extra):
        store.remove(extra)
    for start in range(0, len(missing), 10_000):  # bounded memory on a full rebuild
        ids, matrix = catalog.vectors_for(store.space, missing[start:start + 10_000])
        store.add(ids, matrix, new=True)
    return len(missing), len(extra)

FILLER_KEYS = 2**62
"""Keys at and above this are never segment ids: `scrub` borrows them for the vectors that overwrite
removed ones."""


def scrub(index, dim: int, fresh: Callable[[], object]):
    """An index holding no trace of removed vectors: usearch only marks a removed vector's slot free,
    and saves its bytes with the file until the slot is reused. So every free slot is filled with a
    constant vector under a borrowed key, and those are removed again; if usearch did not put them in
    the free slots (checked by its node count), or when free slots outnumber half the live vectors
    (filling would cost more than rebuilding), the live vectors are copied into a `fresh()` index.
    Returns the index to save (the same one or the rebuilt one)."""
    live = len(index)
    free = index.stats.nodes - live
    if free <= 0:
        return index
    if free <= live // 2:
        nodes = index.stats.nodes
        keys = (FILLER_KEYS + np.random.default_rng().choice(2**61, size=free, replace=False)).astype(np.uint64)
        index.add(keys, np.ones((free, dim), dtype=np.float32))
        filled = index.stats.nodes == nodes
        index.remove(keys)
        if filled:
            return index
    rebuilt = fresh()
    if live:
        keys = np.array(index.keys[:], dtype=np.int64)
        rebuilt.add(keys, np.array(index.get(keys), dtype=np.float32).reshape(live, dim))
    return rebuilt


def index_path(folder: Path, space: str) -> Path:
    """The first shard's file (the only one in collections made before shards)."""
    return shard_path(folder, space, 0)


def shard_path(folder: Path, space: str, number: int) -> Path:
    name = f"vectors-{space}.usearch" if number == 0 else f"vectors-{space}.{number}.usearch"
    return Path(folder) / name


def shard_numbers(folder: Path, space: str) -> list[int]:
    """Numbers of the shard files of `space` on disk, ascending."""
    pattern = re.compile(re.escape(f"vectors-{space}") + r"(?:\.(\d+))?\.usearch")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = (pattern.fullmatch(name) for name in names)
    return sorted(int(m.group(1) or 0) for m in found if m)


def remove_files(folder: Path, space: str) -> None:
    """Delete every shard file of `space` (its vectors stay in the catalog)."""
    for number in shard_numbers(folder, space):
        shard_path(folder, space, number).unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
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


_POOLS: dict[int, ThreadPoolExecutor] = {}  # by thread count
_POOLS_LOCK = threading.Lock()


def _search_pool() -> ThreadPoolExecutor:
    """A pool of `SEARCH_THREADS` threads shared by every store, made on first use (a small
    collection never needs one)."""
    with _POOLS_LOCK:
        if SEARCH_THREADS not in _POOLS:
            _POOLS[SEARCH_THREADS] = ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="shard-search")
        return _POOLS[SEARCH_THREADS]


class _Shard:
    """One usearch file of a space: memory-mapped while only read, loaded while written."""

    def __init__(self, store: "VectorStore", number: int):
        self.store = store
        self.number = number
        self.path = shard_path(store.folder, store.space, number)
        self.index = None
        self.viewing = False
        self.viewed_stat: tuple[int, int] | None = None
        self.dirty = False
        self.removed: set[int] = set()  # ids dropped from a frozen shard, applied on save
        self.needs_scrub = False  # vectors were removed from the loaded index: overwrite them before saving

    def stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def open(self, writable: bool):
        """The index, mapped read-only or loaded for writing as asked; created empty if no file."""
        if self.index is not None:
            if writable and self.viewing:
                self.index = None  # a viewed index must never be modified (usearch would crash)
            elif not writable and self.viewing and not self.dirty and self.stat() != self.viewed_stat:
                self.index = None  # a writer saved a newer file: map that one
            else:
                return self.index
        index = self.store._new_index()
        stat = self.stat()
        if stat is not None:
            try:
                (index.load if writable else index.view)(str(self.path))
            except Exception as exc:  # usearch raises RuntimeError/ValueError on bad files
                raise ReadError(self.path, f"unreadable vector index ({exc}); delete it to rebuild "
                                           "from the catalog") from exc
            if index.ndim != self.store.dim:
                raise ConfigError(f"{self.path}: index has {index.ndim} dimensions, space "
                                  f"{self.store.space!r} expects {self.store.dim}")
        self.index, self.viewing, self.viewed_stat = index, not writable and stat is not None, stat
        return index

    def exists(self) -> bool:
        return self.index is not None or self.stat() is not None

    @property
    def loaded_for_writing(self) -> bool:
        return self.index is not None and not self.viewing

    def size(self) -> int:
        """Vectors in the index, not counting pending removals."""
        return len(self.open(writable=False)) - len(self.removed) if self.exists() else 0

    def keys(self) -> np.ndarray:
        if not self.exists():
            return np.empty(0, dtype=np.int64)
        index = self.open(writable=False)
        keys = np.asarray(index.keys[:], dtype=np.int64) if len(index) else np.empty(0, dtype=np.int64)
        if self.removed:
            keys = keys[~np.isin(keys, np.fromiter(self.removed, dtype=np.int64))]
        return keys

    def contains(self, ids: np.ndarray) -> np.ndarray:
        if not self.exists():
            return np.zeros(len(ids), dtype=bool)
        found = np.asarray(self.open(writable=False).contains(ids), dtype=bool).reshape(-1)
        if self.removed:
            found &= ~np.isin(ids, np.fromiter(self.removed, dtype=np.int64))
        return found

    def save(self) -> None:
        """Write atomically (temp file, fsync, rename, fsync folder); an emptied shard file is deleted."""
        if self.removed:
            index = self.open(writable=True)
            index.remove(np.fromiter(self.removed, dtype=np.int64))
            self.removed.clear()
            self.dirty = self.needs_scrub = True
        if not self.dirty:
            return
        index = self.open(writable=True)
        if self.needs_scrub:  # a forgotten file's vectors must not survive in the saved file
            index = self.index = scrub(index, self.store.dim, self.store._new_index)
            self.needs_scrub = False
        folder = self.store.folder
        folder.mkdir(parents=True, exist_ok=True)
        if len(index) == 0 and self.number > 0:
            self.path.unlink(missing_ok=True)
        else:
            tmp = self.path.with_name(self.path.name + f".tmp-{os.getpid()}")
            index.save(str(tmp))
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        fsync_dir(folder)
        self.dirty = False

    def release(self) -> None:
        """Forget the in-memory index (after `save`): a full shard is read back as a view."""
        self.index, self.viewing, self.viewed_stat = None, False, None

    def search(self, query: np.ndarray, k: int, exact: bool, allowed: Callable[[np.ndarray], np.ndarray] | None,
               seen: list[int]) -> list[tuple[int, float]]:
        """This shard's best `k` allowed (id, cosine), over-fetching until it has `k` or saw everything.

        `seen` ([candidates, allowed]) carries the filter's observed selectivity from shard to shard,
        so later shards fetch enough at once instead of widening step by step.
        """
        if not self.exists():
            return []
        index = self.open(writable=False)
        size = len(index)
        if size == 0:
            return []
        if self.removed:
            dropped = id_filter(np.fromiter(self.removed, dtype=np.int64))
            inner = allowed
            allowed = (lambda keys: ~dropped(keys)) if inner is None else (lambda keys: inner(keys) & ~dropped(keys))
        fetch = k
        if allowed is not None:
            share = seen[1] / seen[0] if seen[0] else 0.25
            fetch = max(4 * k, 64, int(1.5 * k / max(share, 1e-3)))
        fetch = min(size, fetch)
        while True:
            exhausted = fetch >= size
            matches = index.search(query, fetch, exact=exact or exhausted, threads=1)
            keys = np.asarray(matches.keys, dtype=np.int64)
            scores = 1.0 - np.asarray(matches.distances, dtype=np.float64)
            if allowed is not None and len(keys):
                mask = np.asarray(allowed(keys), dtype=bool)
                seen[0] += len(keys)
                seen[1] += int(mask.sum())
                keys, scores = keys[mask], scores[mask]
            if len(keys) >= k or exhausted:
                return [(int(i), float(s)) for i, s in zip(keys[:k], scores[:k])]
            # expect the same share of allowed ids further out; 1.5x margin, at least double
            grow = 8.0 if len(keys) == 0 else 1.5 * k / len(keys)
            fetch = min(size, int(fetch * max(grow, 2.0)) + 1)


class VectorStore:
    """Add, remove and search the vectors of one space by segment id.

    The vectors live in shards of at most `capacity` vectors (about `SHARD_BYTES` of float32 each).
    Only the newest shard is ever loaded for writing; full shards are saved, dropped from memory and
    afterwards memory-mapped. So indexing holds one shard in memory, not the whole collection, and a
    periodic save rewrites one shard, not everything. Removing ids from a full shard is recorded and
    applied on `save`, one shard at a time.

    Opening is lazy: nothing is imported or read until the first call. A store that only searches
    memory-maps every shard (read-only views); it notices when a writer replaced, added or deleted
    a shard file and maps the new state.
    """

    def __init__(self, folder: Path, space: str, dim: int, metric: str = "cos", capacity: int | None = None):
        check_space(space, dim, metric)
        self.folder = Path(folder)
        self.space = space
        self.dim = int(dim)
        self.metric = metric
        self.capacity = int(capacity) if capacity else max(MIN_SHARD_VECTORS, SHARD_BYTES // (4 * self.dim))
        self._shards: dict[int, _Shard] = {}

    def _new_index(self):
        _import_onnxruntime_first()
        from usearch.index import Index  # imported on first use: keeps CLI start-up light
        return Index(ndim=self.dim, metric=self.metric, dtype="f32", connectivity=CONNECTIVITY,
                     expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)

    def _current(self) -> list[_Shard]:
        """The shards on disk plus one being written, in order; follows files other processes wrote."""
        on_disk = set(shard_numbers(self.folder, self.space))
        for number in on_disk - self._shards.keys():
            self._shards[number] = _Shard(self, number)
        for number, shard in list(self._shards.items()):
            if number not in on_disk and not shard.loaded_for_writing:
                self._shards.pop(number, None)  # a writer deleted it (it became empty)
        return [self._shards[n] for n in sorted(self._shards)]

    def _writable_shard(self) -> _Shard:
        """The newest shard if it has room, loaded for writing; else a new one (a full shard is
        saved and let go, so at most one shard of a space is ever in memory)."""
        shards = self._current()
        if shards and len(shards[-1].open(writable=False)) < self.capacity:
            shards[-1].open(writable=True)
            return shards[-1]
        if shards and shards[-1].loaded_for_writing:
            shards[-1].save()
            shards[-1].release()
        number = shards[-1].number + 1 if shards else 0
        shard = self._shards[number] = _Shard(self, number)
        shard.open(writable=True)
        return shard

    # ------------------------------------------------------------------ edits

    def add(self, ids: np.ndarray, vectors: np.ndarray, new: bool = False) -> None:
        """Add (or replace) vectors by segment id.

        `new`: the caller vouches that no full shard holds these ids (the catalog never reuses a
        segment id), so full shards are not looked up: indexing then never maps them into memory.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1) if len(ids) else vectors
        if len(ids) == 0:
            return
        if vectors.shape[1] != self.dim:
            raise ValueError(f"space {self.space!r} holds {self.dim}-d vectors, got {vectors.shape[1]}-d")
        if len(np.unique(ids)) != len(ids) or ids.min() < 0:
            raise ValueError(f"space {self.space!r}: ids must be unique and non-negative")
        if new:
            shards = self._current()
            if shards and shards[-1].loaded_for_writing:
                self._remove_from(shards[-1], ids)
        else:
            self.remove(ids)
        start = 0
        while start < len(ids):
            shard = self._writable_shard()
            index = shard.index
            room = self.capacity - len(index)
            chunk = slice(start, start + room)
            index.add(ids[chunk], np.ascontiguousarray(vectors[chunk]))
            shard.dirty = True
            start += room

    def remove(self, ids) -> None:
        """Drop these ids; unknown ids are ignored."""
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            return
        for shard in self._current():
            self._remove_from(shard, ids)

    @staticmethod
    def _remove_from(shard: _Shard, ids: np.ndarray) -> None:
        found = ids[shard.contains(ids)]
        if not len(found):
            return
        if shard.loaded_for_writing:  # in memory anyway: drop now
            shard.index.remove(found)
            shard.dirty = shard.needs_scrub = True
        else:
            shard.removed.update(int(i) for i in found)

    def save(self) -> None:
        """Write every changed shard atomically: never a torn file. Only the newest shard, if it has
        room, stays in memory. After removals, sparse shards are merged (`_compact`)."""
        removed = any(shard.removed for shard in self._current())
        self._save_shards()
        if removed and self._compact():
            self._save_shards()

    def _save_shards(self) -> None:
        shards = self._current()
        for shard in shards:
            shard.save()
            if shard.loaded_for_writing and (shard is not shards[-1] or len(shard.index) >= self.capacity):
                shard.release()

    def _compact(self) -> bool:
        """Move the vectors of the sparsest older shards into the newest until at most one shard more
        than the vectors need is left; True if any moved. Deleting files leaves shards half empty, and
        every shard costs a search its own descent.

        A moved shard's file is deleted before the shard that takes its vectors is saved: a crash in
        between leaves those ids missing from the files (never twice in them), and `sync_with`, run
        when a collection opens a space, adds them back from the catalog.
        """
        moved = False
        for _ in range(len(self._current())):  # each move leaves one sparse older shard fewer
            shards = [shard for shard in self._current() if shard.exists()]
            sizes = {shard.number: shard.size() for shard in shards}
            live = [shard for shard in shards if sizes[shard.number]]
            needed = max(1, -(-sum(sizes.values()) // self.capacity))
            if len(live) <= needed + 1 or len(live) < 2:
                break
            victim = min(live[:-1], key=lambda shard: sizes[shard.number])  # the newest takes vectors in
            index = victim.open(writable=False)
            keys = np.array(index.keys[:], dtype=np.int64)  # copies: the mapped file is about to go
            vectors = np.array(index.get(keys), dtype=np.float32).reshape(len(keys), self.dim)
            self._drop_file(victim)
            self.add(keys, vectors, new=True)
            moved = True
        return moved

    def _drop_file(self, shard: _Shard) -> None:
        """Forget a shard on disk: delete its file, or leave the first one empty (older versions of
        Sensorium read that file)."""
        shard.release()
        if shard.number == 0:
            empty = self._new_index()
            shard.index, shard.viewing, shard.dirty = empty, False, True
            shard.save()  # atomic: an empty first shard
            shard.release()
        else:
            shard.path.unlink(missing_ok=True)
            fsync_dir(self.folder)
            self._shards.pop(shard.number, None)

    def sync_with(self, catalog: Catalog) -> tuple[int, int]:
        """Make the index hold exactly the catalog's ids for this space; returns (added, removed).

        Needed after a crash between a catalog commit and `save`. Segment ids are never reused by
        the catalog, so an id present on both sides always has the same vector. Does not save.
        """
        return sync_store(self, catalog)

    # ------------------------------------------------------------------ reading

    def ids(self) -> np.ndarray:
        """Every id in the index, sorted."""
        parts = [shard.keys() for shard in self._current()]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return sum(shard.size() for shard in self._current())

    def search(self, query: np.ndarray, k: int,
               allowed: Callable[[np.ndarray], np.ndarray] | np.ndarray | None = None) -> list[tuple[int, float]]:
        """Best `k` (segment id, cosine similarity) pairs, best first.

        `allowed` filters candidates (e.g. by kind): a predicate `ids -> bool mask`, or an array of
        the allowed ids. Each shard over-fetches, widening by the selectivity it observes, until it
        has `k` allowed hits or has seen the whole shard; the shards' best are merged.
        """
        if allowed is not None and not callable(allowed):
            allowed = id_filter(allowed)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise ValueError(f"space {self.space!r} holds {self.dim}-d vectors, query is {query.shape[0]}-d")
        if k <= 0:
            return []
        shards = [shard for shard in self._current() if shard.exists()]
        if not shards:
            return []
        exact = sum(len(shard.open(writable=False)) for shard in shards) < EXACT_BELOW  # maps every shard
        seen = [0, 0]  # shared between threads: a rough count is all the over-fetch estimate needs
        if len(shards) > 1 and SEARCH_THREADS > 1:
            found = _search_pool().map(lambda shard: shard.search(query, k, exact, allowed, seen), shards)
        else:
            found = (shard.search(query, k, exact, allowed, seen) for shard in shards)
        hits = [hit for shard_hits in found for hit in shard_hits]
        hits.sort(key=lambda hit: -hit[1])
        return hits[:k]
