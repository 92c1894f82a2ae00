"""The compressed layout of a space's ANN index: ten million vectors in well under 4 GB of memory.

The default layout (`sensorium.index.vectors`, usearch HNSW over float32) keeps ~1.7 KB per 384-d
vector in its files and serves them mapped: 17 GB at ten million. This one keeps, per vector, a
product-quantised code of `pq_bytes(dim)` bytes (192 for 384-d) in a faiss IVF-PQ index held in memory,
plus the vector's row number; the float32 vectors stay on disk in a `RowFile`. A query scans the codes
of the `nprobe` nearest of the index's k-means cells, takes the best `rerank` candidates, reads those
rows from disk and re-ranks them exactly, so the scores it returns are true cosines.
`benchmarks/scale_search.py` chose it over usearch with f16 / i8 vectors by measurement.

Files in the collection's `vectors/` folder, for space S (named `compressed-S.*`, below `S.*`):
- `S.json`: the manifest, replaced atomically on every save; it names the generation's files
  and how many rows of the row file are committed. A crash leaves the previous generation whole
  (rows appended after it are cut off on open) and `sync_with` re-adds what the catalog has since.
- `S.rows.G.f32`: the float32 unit vectors, one row each, append-only between rebuilds.
- `S.ids.G.npy`: the segment id of every row, -1 once removed. Removed rows' bytes are overwritten
  with zeros at the next save, as the HNSW layout scrubs its files.
- `S.ivfpq.G`: the faiss index; its ids are row numbers. Absent until the space holds `train_at` vectors:
  below that a query is answered exactly from the rows (small, so fast).

IVF's cells are k-means centres of the vectors it was trained on: as a collection grows they fit it
less well, so the index is retrained from the rows when the space has grown `RETRAIN_GROWTH` times
since; when removed rows outnumber live ones, the row file is rewritten without them.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sensorium.errors import ReadError
from sensorium.index.rows import RowFile
from sensorium.index.vectors import check_space, fsync_dir, id_filter, sync_store

if TYPE_CHECKING:
    from sensorium.index.catalog import Catalog

TRAIN_AT = 50_000
"""Vectors a space needs before it gets an IVF-PQ index; fewer are searched exactly from the rows."""
NPROBE = 32
RERANK = 100
"""Cells scanned and candidates re-ranked per query (benchmarks/scale_search.py, BENCHMARKS.md): each
re-ranked candidate is one row read from disk, so depth costs latency when the rows are not cached."""
MIN_TRAIN = 256
"""Fewest vectors an index is ever trained on, whatever `train_at` says: each 8-bit PQ sub-quantiser
is a k-means of 256 centres."""
RETRAIN_GROWTH = 4.0
TRAIN_PER_CELL = 40
"""Training vectors per IVF cell (faiss asks for at least 39)."""
CHUNK = 100_000
NO_ROW = -1
PREFIX = "compressed-"


def pq_bytes(dim: int) -> int:
    """Bytes per code: one per 2 dimensions (192 for 384-d), at most 256, a divisor of `dim` (faiss's
    PQ splits the vector into that many equal sub-vectors). Coarser codes ranked the true neighbours
    too far down the candidate list on vectors derived from real text embeddings: at ten million,
    recall@10 0.84 with 200 re-ranked at one byte per 4 dimensions, 0.985 with 100 at one per 2
    (docs/experiments/2026-12-05-ten-million-vectors.md)."""
    limit = max(1, min(256, dim // 2))
    return max(m for m in range(1, limit + 1) if dim % m == 0)


def cells(count: int) -> int:
    """IVF cells for `count` vectors: the power of two at or under 4 sqrt(n) (faiss's guidance is
    4-16 sqrt(n); the low end, because k-means over the cells is most of the build time on a
    laptop), with at least `TRAIN_PER_CELL` training vectors per cell."""
    wanted = 2 ** int(np.floor(np.log2(max(1.0, 4 * np.sqrt(count)))))
    return int(max(1, min(wanted, 65536, count // TRAIN_PER_CELL)))


def factory(dim: int, count: int) -> str:
    """The faiss index description for `count` vectors: IVF cells (found through an HNSW graph over
    the centres from 4,096 cells on, so assigning vectors is not a scan of every centre) and PQ codes."""
    nlist = cells(count)
    return f"IVF{nlist}{'_HNSW32' if nlist >= 4096 else ''},PQ{pq_bytes(dim)}"


def files(folder: Path, space: str) -> list[Path]:
    """Every file of this layout for a space (any generation)."""
    return sorted(p for pattern in (f"{PREFIX}{space}.json", f"{PREFIX}{space}.rows.*", f"{PREFIX}{space}.ids.*",
                                    f"{PREFIX}{space}.ivfpq.*") for p in Path(folder).glob(pattern))


def remove_files(folder: Path, space: str) -> None:
    for path in files(folder, space):
        path.unlink(missing_ok=True)
    if Path(folder).exists():
        fsync_dir(Path(folder))


class CompressedStore:
    """Add, remove and search the vectors of one space by segment id; the same calls as `VectorStore`.

    A writer holds the faiss index and the row ids in memory (~210 bytes per 384-d vector); a reader
    the same, and it reloads them when a writer's save replaced the manifest.
    """

    def __init__(self, folder: Path, space: str, dim: int, metric: str = "cos", train_at: int = TRAIN_AT,
                 nprobe: int = NPROBE, rerank: int = RERANK):
        check_space(space, dim, metric)
        self.folder, self.space, self.dim, self.metric = Path(folder), space, int(dim), metric
        self.train_at, self.nprobe, self.rerank = max(MIN_TRAIN, int(train_at)), int(nprobe), int(rerank)
        self._loaded_stamp: tuple | None = None
        self._manifest: dict = {}
        self._rows: RowFile | None = None
        self._ids_head = np.empty(0, dtype=np.int64)
        self._ids_tail: list[np.ndarray] = []  # ids appended since the last read: concatenated when read
        self._live = 0  # rows not removed: kept as a count, a query must not scan the row ids
        self._index = None
        self._erase: list[int] = []  # removed rows whose bytes the next save zeroes
        self._unindexed: list[int] = []  # removed rows still in the faiss index
        self._exact: tuple[int, np.ndarray] | None = None  # (rows, matrix) for exact search, untrained
        self.dirty = False

    @property
    def _row_ids(self) -> np.ndarray:
        """The segment id of every row (NO_ROW once removed)."""
        if self._ids_tail:
            self._ids_head = np.concatenate([self._ids_head, *self._ids_tail])
            self._ids_tail = []
        return self._ids_head

    # ------------------------------------------------------------------ files

    @property
    def manifest_path(self) -> Path:
        return self.folder / f"{PREFIX}{self.space}.json"

    def _stamp(self) -> tuple | None:
        try:
            stat = self.manifest_path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def _load(self) -> None:
        """Read the committed generation, unless this process has unsaved changes or it is current.
        A writer deletes a generation's files right after committing the next: a reader that read
        the old manifest just before finds them gone, and reads the new manifest instead."""
        for attempt in range(3):
            try:
                return self._load_once()
            except FileNotFoundError:
                if attempt == 2:
                    raise
                self._loaded_stamp = None

    def _load_once(self) -> None:
        if self.dirty:
            return
        stamp = self._stamp()
        if stamp == self._loaded_stamp and (stamp is not None or self._rows is not None):
            return
        if self._rows is not None:
            self._rows.close()
        manifest = json.loads(self.manifest_path.read_text()) if stamp else {}
        if manifest and (manifest.get("dim") != self.dim or manifest.get("metric") != self.metric):
            raise ReadError(self.manifest_path, f"holds {manifest.get('dim')}-d {manifest.get('metric')} vectors, "
                            f"this space is {self.dim}-d {self.metric}")
        generation = manifest.get("generation", 0)
        self._manifest = manifest or {"generation": 0, "rows": 0, "trained_on": 0, "index": None}
        self._rows = RowFile(self.folder / f"{PREFIX}{self.space}.rows.{manifest.get('rows_generation', generation)}.f32", self.dim)
        self._ids_head = (np.load(self.folder / f"{PREFIX}{self.space}.ids.{generation}.npy") if manifest
                          else np.empty(0, dtype=np.int64))
        self._ids_tail = []
        if manifest:
            if not self._rows.path.exists():
                raise FileNotFoundError(self._rows.path)
            len(self._rows)  # opens it now: a rewrite that deletes the file later cannot take it away
        index_name = self._manifest.get("index")
        self._index = None
        if index_name:
            import faiss
            if not (self.folder / index_name).exists():  # faiss would say so with a RuntimeError
                raise FileNotFoundError(self.folder / index_name)
            self._index = faiss.read_index(str(self.folder / index_name))
        self._exact, self._erase, self._unindexed = None, [], []
        self._live = int((self._row_ids != NO_ROW).sum())
        self._loaded_stamp = stamp

    def _writable(self) -> None:
        """Load for writing: rows a crash appended after the last commit are cut off."""
        self._load()
        if not self.dirty and len(self._rows) != len(self._row_ids):
            self._rows.truncate(len(self._row_ids))

    # ------------------------------------------------------------------ edits

    def add(self, ids: np.ndarray, vectors: np.ndarray, new: bool = False) -> None:
        """Add (or replace) vectors by segment id. `new`: the caller vouches that these ids are not
        here yet (the catalog never reuses a segment id), which saves a scan of every row's id."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"space {self.space!r} holds {self.dim}-d vectors, got {vectors.shape[1]}-d")
        if len(np.unique(ids)) != len(ids) or ids.min() < 0:
            raise ValueError(f"space {self.space!r}: ids must be unique and non-negative")
        self._writable()
        if not new:
            self.remove(ids)
        if self.metric == "cos":
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            off = np.abs(norms - 1.0) > 1e-5  # unit vectors are kept bit for bit, as the catalog has them
            vectors = np.where(off, vectors / np.where(norms > 0, norms, 1.0), vectors).astype(np.float32)
        first = self._rows.append(vectors)
        rows = np.arange(first, first + len(ids), dtype=np.int64)
        self._ids_tail.append(ids)  # adding 10M vectors in 10k batches must not copy the ids 1,000 times
        self._live += len(ids)
        if self._index is not None:
            self._index.add_with_ids(np.ascontiguousarray(vectors), rows)
        self._exact = None
        self.dirty = True

    def remove(self, ids) -> None:
        """Drop these ids; unknown ids are ignored. Their rows are zeroed on disk at the next save."""
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            return
        self._writable()
        rows = np.flatnonzero(np.isin(self._row_ids, ids))  # one pass over the row ids (~0.1 s at 10M)
        if len(rows) == 0:
            return
        self._row_ids[rows] = NO_ROW
        self._live -= len(rows)
        self._erase.extend(rows.tolist())
        self._unindexed.extend(rows.tolist())
        self._exact = None
        self.dirty = True

    def save(self) -> None:
        """Commit: zero removed rows, (re)train when due, then write the ids, the index and last the
        manifest, each atomically; files of older generations are deleted after."""
        if not self.dirty:
            return
        self._scrub_removed()
        live = self._live
        manifest = dict(self._manifest)
        rows_generation = manifest.get("rows_generation", manifest["generation"])
        generation = manifest["generation"] + 1
        if self._index is not None and live < self.train_at // 2:
            self._index, manifest["trained_on"] = None, 0  # small again: exact search
        if len(self._row_ids) - live > live:
            self._rewrite_rows(generation)  # row numbers change: the index is rebuilt below
            self._index, rows_generation = None, generation
        if live >= self.train_at and (self._index is None or live > RETRAIN_GROWTH * manifest["trained_on"]):
            self._index, manifest["trained_on"] = self._train(), live
        self._rows.sync()
        ids_name = f"{PREFIX}{self.space}.ids.{generation}.npy"
        _atomic(self.folder / ids_name, lambda path: _save_array(path, self._row_ids))
        index_name = None
        if self._index is not None:
            import faiss
            index_name = f"{PREFIX}{self.space}.ivfpq.{generation}"
            _atomic(self.folder / index_name, lambda path: faiss.write_index(self._index, str(path)))
        manifest.update(generation=generation, rows_generation=rows_generation, rows=len(self._row_ids),
                        index=index_name, dim=self.dim, metric=self.metric, live=live, saved=time.time())
        _atomic(self.manifest_path, lambda path: path.write_text(json.dumps(manifest, indent=1)))
        fsync_dir(self.folder)
        keep = {self.manifest_path.name, ids_name, index_name, self._rows.path.name}
        for path in files(self.folder, self.space):
            if path.name not in keep:
                path.unlink(missing_ok=True)
        self._manifest, self.dirty, self._loaded_stamp = manifest, False, self._stamp()

    def _scrub_removed(self) -> None:
        if self._unindexed and self._index is not None:
            import faiss
            self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(self._unindexed, dtype=np.int64)))
        zeros = np.zeros((1, self.dim), dtype=np.float32)
        for row in sorted(set(self._erase)):
            if row < len(self._rows):
                self._rows.overwrite(row, zeros)
        self._erase, self._unindexed = [], []

    def _rewrite_rows(self, generation: int) -> None:
        """Copy the live rows into a new row file (removed ones outnumber them)."""
        fresh = RowFile(self.folder / f"{PREFIX}{self.space}.rows.{generation}.f32", self.dim)
        fresh.truncate(0)
        live = np.flatnonzero(self._row_ids != NO_ROW)
        for start in range(0, len(live), CHUNK):
            fresh.append(self._rows.read(live[start:start + CHUNK]))
        self._rows.close()
        self._rows, self._ids_head, self._ids_tail = fresh, self._row_ids[live], []

    def _train(self):
        """A new IVF-PQ index, trained on a sample of the live rows, holding all of them."""
        import faiss
        live = np.flatnonzero(self._row_ids != NO_ROW)
        index = faiss.index_factory(self.dim, factory(self.dim, len(live)), faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.do_polysemous_training = False  # unused here, and minutes of training
        sample = np.sort(np.random.default_rng(0).choice(live, min(len(live), TRAIN_PER_CELL * ivf.nlist), replace=False))
        index.train(self._rows.read(sample))
        for start in range(0, len(live), CHUNK):
            rows = live[start:start + CHUNK]
            index.add_with_ids(self._rows.read(rows), rows)
        return index

    def sync_with(self, catalog: Catalog) -> tuple[int, int]:
        """Make the index hold exactly the catalog's ids for this space; returns (added, removed)."""
        return sync_store(self, catalog)

    # ------------------------------------------------------------------ reading

    def ids(self) -> np.ndarray:
        self._load()
        return np.sort(self._row_ids[self._row_ids != NO_ROW])

    def __len__(self) -> int:
        self._load()
        return self._live

    @property
    def trained(self) -> bool:
        self._load()
        return self._index is not None

    def search(self, query: np.ndarray, k: int,
               allowed: Callable[[np.ndarray], np.ndarray] | np.ndarray | None = None) -> list[tuple[int, float]]:
        """Best `k` (segment id, cosine similarity) pairs, best first, re-ranked exactly.

        `allowed` filters candidates: a predicate `ids -> bool mask`, or an array of allowed ids. The
        candidate list widens (and more cells are scanned) until `k` allowed hits are found or every
        cell has been scanned."""
        if allowed is not None and not callable(allowed):
            allowed = id_filter(allowed)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise ValueError(f"space {self.space!r} holds {self.dim}-d vectors, query is {query.shape[0]}-d")
        if self.metric == "cos":
            query = query / max(float(np.linalg.norm(query)), 1e-12)
        self._load()
        if k <= 0 or self._live == 0:
            return []
        if self._index is None:
            return self._search_exact(query, k, allowed)
        ivf = faiss_ivf(self._index)
        fetch, nprobe = max(self.rerank, k), self.nprobe
        while True:
            ivf.nprobe = min(nprobe, ivf.nlist)
            rows = self._index.search(query[None], fetch)[1][0]
            exhausted = bool((rows < 0).any()) or fetch >= self._live  # these cells hold no more
            rows = rows[rows >= 0]
            rows = rows[self._row_ids[rows] != NO_ROW]  # removed since the index was saved
            keys = self._row_ids[rows]
            if allowed is not None and len(keys):
                mask = np.asarray(allowed(keys), dtype=bool)
                rows, keys = rows[mask], keys[mask]
            if len(keys) >= k or (exhausted and ivf.nprobe >= ivf.nlist):
                break
            if exhausted:
                nprobe *= 4
            grow = 8 if len(keys) == 0 else max(2, int(1.5 * k / len(keys)) + 1)
            fetch = min(fetch * grow, max(self._live, k))  # more than every vector finds nothing more
        scores = self._rows.read(rows) @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(keys[i]), float(scores[i])) for i in order]

    def _search_exact(self, query: np.ndarray, k: int, allowed) -> list[tuple[int, float]]:
        if self._exact is None or self._exact[0] != len(self._row_ids):
            self._exact = (len(self._row_ids), self._rows.read(np.arange(len(self._row_ids))))
        rows = np.flatnonzero(self._row_ids != NO_ROW)
        if allowed is not None:
            rows = rows[np.asarray(allowed(self._row_ids[rows]), dtype=bool)]
        scores = self._exact[1][rows] @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(self._row_ids[rows[i]]), float(scores[i])) for i in order]


def faiss_ivf(index):
    import faiss
    return faiss.extract_index_ivf(index)


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, fsync it, and rename it into place."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would append ".npy" to a ".partial" name
        np.save(handle, array)
