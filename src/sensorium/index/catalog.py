"""The SQLite catalog: the durable truth of a collection.

It holds every item (one file), its segments (time spans or whole-file parts), their searchable
text (FTS5) and their embedding vectors (float32 blobs). The ANN files next to it are a cache that
`VectorStore.sync_with` can always rebuild from here, so a crash between a catalog commit and an
index save loses nothing.

Why these choices:
- one transaction per `put_item`, so an item is either fully stored or not at all;
- WAL journal with synchronous=NORMAL: readers never block the writer, and a commit survives a
  process crash (`kill -9`) at any moment; a power cut may drop the last few commits but never
  corrupts the file, and the next `index` run redoes those files. FULL measured ~5.7 ms of fsync
  per stored file, paid on every file for a guarantee only a power cut needs;
- segment ids come from AUTOINCREMENT and are never reused, so a stale id left in an ANN file by a
  crash can never be mistaken for a newer segment;
- an explicit `schema_version` table and ordered migrations, so old collections open in new code;
- `secure_delete` on, and `scrub` after deletions (the FTS index merged, the WAL checkpointed and
  truncated): a forgotten file's text and vectors leave no bytes behind in the catalog's files.

Paths are stored relative to named roots (`sensorium.index.roots`): every method takes and returns
absolute paths and converts at this boundary, so a moved media folder is one row of `roots`.

Change-detection rule (applied by the collection on top of `item_state`): a file is unchanged iff
its size and mtime_ns equal the stored ones. Otherwise hash it; the same content_hash means it was
only touched (`touch` updates the state, nothing is re-embedded); a different hash means re-index.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.errors import ConfigError, ReadError
from sensorium.index.migrations import MIGRATIONS, SCHEMA_VERSION
from sensorium.index.catalog_roots import RootRows
from sensorium.index.roots import RootMap, normal_folder, prefix_range, stored_prefix


@dataclass
class NewSegment:
    """A segment about to be stored: what `put_item` receives from the readers and experts."""

    start: float | None
    end: float | None
    source: str
    text: str = ""
    labels: list = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    ocr: str = ""  # text read in a picture: searchable by words like `text`, kept apart for display
    words: list = field(default_factory=list)  # (start, end, word) of each spoken word


@dataclass
class FileState:
    """What the scanner saw of a file; enough to tell whether it changed since it was indexed."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str | None = None


@dataclass
class Item:
    id: int
    path: str
    modality: str
    size: int
    mtime_ns: int
    content_hash: str
    duration: float | None
    meta: dict
    indexed_at: float


@dataclass
class SegmentRow:
    id: int
    item_id: int
    path: str
    modality: str
    start: float | None
    end: float | None
    source: str
    text: str
    labels: list
    ocr: str = ""
    words: list = field(default_factory=list)  # [(start, end, word), ...] for spoken segments



_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_QUERY_TERMS = 32


def fts_query(text: str) -> str | None:
    """Turn free user text into a safe FTS5 query: each word quoted, any word may match (OR).

    Quoting every token means operators, quotes, colons or parentheses typed by a user are data,
    never FTS syntax; bm25 still ranks segments matching more of the words first.
    """
    words = _WORD.findall(text.lower())[:_MAX_QUERY_TERMS]
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


MIN_ID, MAX_ID = -(2**63), 2**63 - 1  # SQLite INTEGER


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


class Catalog(RootRows):
    """One collection's SQLite database. Safe to share across threads; one writer process at a time
    (the collection holds `WriterLock` while writing), any number of reader processes."""

    def __init__(self, db_path: Path, readonly: bool = False):
        """`readonly=True` opens an existing, migrated catalog through a read-only connection (the
        service's reads: they can never write, and under WAL they never block the writer)."""
        self.db_path = Path(db_path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._id_cache: dict[tuple, tuple] = {}  # modalities -> (catalog version, sorted segment ids)
        self._root_cache: tuple[tuple[int, int], RootMap] | None = None
        try:
            if readonly:
                self._db = sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro", uri=True,
                                           isolation_level=None, check_same_thread=False, timeout=30.0)
                version = self.schema_version()
                if version != SCHEMA_VERSION:
                    raise ConfigError(f"{self.db_path}: catalog schema version {version}, this Sensorium reads "
                                      f"{SCHEMA_VERSION}; open it once for writing to migrate it")
                return
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False,
                                       timeout=30.0)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA secure_delete = ON")  # deleted rows and freed pages are zeroed
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise ReadError(self.db_path, f"not a usable Sensorium catalog ({exc})") from exc

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error: all or nothing."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        # Readers of an up-to-date catalog must not take the write lock just to open it.
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
            if self._db.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,):
                return
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise ConfigError(f"{self.db_path}: catalog schema version {version} is newer than this "
                                  f"Sensorium understands ({SCHEMA_VERSION}); upgrade Sensorium")
            for script in MIGRATIONS[version:]:
                if callable(script):
                    script(db, self.db_path.resolve().parent)
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version != SCHEMA_VERSION:
                db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("SELECT version FROM schema_version").fetchone()[0]

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _key(self, path: str) -> str | None:
        """`path` as stored, or None when no root holds it (so nothing stored can match it)."""
        return self.root_map().stored(str(path))

    def _key_for_write(self, db: sqlite3.Connection, path: str) -> str:
        """`path` as stored, making a root at its folder when none holds it (library callers storing a
        file outside every indexed folder; `index` makes the folder it walks a root first)."""
        key = self._key(path)
        if key is None:
            self._add_root(db, normal_folder(os.path.dirname(normal_folder(path))), None)
            key = self._key(path)
        return key

    def _item(self, row: tuple) -> Item:
        return Item(row[0], self.root_map().absolute(row[1]), row[2], row[3], row[4], row[5], row[6],
                    json.loads(row[7]), row[8])

    # ------------------------------------------------------------------ items

    def item_state(self, path: str) -> FileState | None:
        """The state last recorded for `path`: its stored item, or its failure if that is newer."""
        key = self._key(path)
        if key is None:
            return None
        with self._lock:
            item = self._db.execute("SELECT size, mtime_ns, content_hash, indexed_at FROM items WHERE path = ?",
                                    (key,)).fetchone()
            failed = self._db.execute("SELECT size, mtime_ns, content_hash, failed_at FROM failures WHERE path = ?",
                                      (key,)).fetchone()
        latest = max((r for r in (item, failed) if r is not None), key=lambda r: r[3], default=None)
        return None if latest is None else FileState(path, latest[0], latest[1], latest[2])

    def item(self, path: str) -> Item | None:
        key = self._key(path)
        if key is None:
            return None
        rows = self._read("SELECT id, path, modality, size, mtime_ns, content_hash, duration, meta, indexed_at "
                          "FROM items WHERE path = ?", (key,))
        return self._item(rows[0]) if rows else None

    def item_by_id(self, item_id: int) -> Item | None:
        """The item with this id; None for an unknown id, including one no SQLite integer can hold
        (ids arrive from URLs)."""
        if not MIN_ID <= int(item_id) <= MAX_ID:
            return None
        rows = self._read("SELECT id, path, modality, size, mtime_ns, content_hash, duration, meta, indexed_at "
                          "FROM items WHERE id = ?", (int(item_id),))
        return self._item(rows[0]) if rows else None

    def item_detail(self, item_id: int) -> tuple[Item, list[SegmentRow]] | None:
        """An item and all its segments in time order (untimed ones first, then by id)."""
        item = self.item_by_id(item_id)
        if item is None:
            return None
        ids = [r[0] for r in self._read('SELECT id FROM segments WHERE item_id = ? ORDER BY start, id', (item.id,))]
        return item, self.segments(ids)

    def put_item(self, state: FileState, modality: str, duration: float | None, meta: dict,
                 segments: list[NewSegment]) -> tuple[int, list[int], list[int]]:
        """Store one file's item and segments, replacing any previous version, in ONE transaction.

        Returns (item_id, new_segment_ids in the order given, removed_segment_ids) so the caller
        can update its ANN indexes the same way.
        """
        prepared = [self._prepare(state.path, i, seg) for i, seg in enumerate(segments)]
        with self._transaction() as db:
            self._check_dims(db, state.path, prepared)
            key = self._key_for_write(db, state.path)
            removed = self._delete_items(db, [key])
            db.execute("DELETE FROM failures WHERE path = ?", (key,))
            item_id = db.execute(
                "INSERT INTO items (path, modality, size, mtime_ns, content_hash, duration, meta, indexed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, modality, int(state.size), int(state.mtime_ns), state.content_hash, duration,
                 json.dumps(meta), time.time())).lastrowid
            new_ids = []
            for seg, labels, words, vectors in prepared:
                seg_id = db.execute(
                    'INSERT INTO segments (item_id, start, "end", source, text, labels, ocr, words) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (item_id, seg.start, seg.end, str(seg.source), seg.text or "", labels, seg.ocr or "",
                     words)).lastrowid
                new_ids.append(seg_id)
                searchable = " ".join(part for part in (seg.text, seg.ocr) if part)
                if searchable:
                    db.execute("INSERT INTO segment_text (rowid, text) VALUES (?, ?)", (seg_id, searchable))
                db.executemany("INSERT INTO vectors (segment_id, space, dim, data) VALUES (?, ?, ?, ?)",
                               [(seg_id, space, dim, blob) for space, (dim, blob) in vectors.items()])
        return item_id, new_ids, removed

    @staticmethod
    def _prepare(path: str, index: int, seg: NewSegment) -> tuple[NewSegment, str, str, dict[str, tuple[int, bytes]]]:
        """Validate and serialise a segment before the transaction opens (no half-written item)."""
        vectors = {}
        for space, vector in seg.vectors.items():
            array = np.asarray(vector, dtype=np.float32)
            if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
                raise ValueError(f"{path}: segment {index} vector for space {space!r} must be a finite 1-D "
                                 f"array, got shape {array.shape}")
            vectors[space] = (array.size, _blob(array))
        words = json.dumps([[round(float(start), 3), round(float(end), 3), str(word)] for start, end, word in seg.words])
        return seg, json.dumps(seg.labels), words, vectors

    @staticmethod
    def _check_dims(db: sqlite3.Connection, path: str, prepared: list) -> None:
        spaces = {space: dim for *_, vectors in prepared for space, (dim, _) in vectors.items()}
        for space, dim in spaces.items():
            row = db.execute("SELECT dim FROM vectors WHERE space = ? LIMIT 1", (space,)).fetchone()
            mismatched = [d for *_, v in prepared for s, (d, _) in v.items() if s == space and d != dim]
            if (row and row[0] != dim) or mismatched:
                raise ValueError(f"{path}: vectors for space {space!r} have {dim} dimensions, the collection "
                                 f"stores {row[0] if row else mismatched[0]}")

    @staticmethod
    def _delete_items(db: sqlite3.Connection, keys: Iterable[str]) -> list[int]:
        """Delete the items stored under these keys (stored paths); returns their segment ids."""
        removed: list[int] = []
        for path in keys:
            row = db.execute("SELECT id FROM items WHERE path = ?", (path,)).fetchone()
            if row is None:
                continue
            seg_ids = [r[0] for r in db.execute("SELECT id FROM segments WHERE item_id = ? ORDER BY id", (row[0],))]
            db.executemany("DELETE FROM segment_text WHERE rowid = ?", [(i,) for i in seg_ids])
            db.executemany("DELETE FROM vectors WHERE segment_id = ?", [(i,) for i in seg_ids])
            db.execute("DELETE FROM segments WHERE item_id = ?", (row[0],))
            db.execute("DELETE FROM items WHERE id = ?", (row[0],))
            removed.extend(seg_ids)
        return removed

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """Record a new size/mtime for an item whose content hash did not change (nothing re-embedded)."""
        key = self._key(path)
        if key is None:
            return
        with self._transaction() as db:
            db.execute("UPDATE items SET size = ?, mtime_ns = ? WHERE path = ?", (int(size), int(mtime_ns), key))
            db.execute("UPDATE failures SET size = ?, mtime_ns = ? WHERE path = ?", (int(size), int(mtime_ns), key))

    def record_failure(self, state: FileState, modality: str | None, reason: str) -> None:
        """Remember why a file could not be indexed. A good item already stored for it is kept."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO failures (path, modality, size, mtime_ns, content_hash, reason, failed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET modality = excluded.modality, "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, "
                "reason = excluded.reason, failed_at = excluded.failed_at",
                (self._key_for_write(db, state.path), modality, int(state.size), int(state.mtime_ns), state.content_hash, reason, time.time()))

    def scrub(self) -> bool:
        """Erase what deleted rows leave behind: FTS5 keeps a deleted segment's words in its index until
        its segments are merged ('optimize'), and the WAL keeps old page images until a checkpoint
        (TRUNCATE empties it). `secure_delete` zeroes the rest. True when the WAL was emptied; a
        reader holding an old snapshot (a running service mid-query) can keep it from that."""
        with self._lock:
            self._db.execute("INSERT INTO segment_text (segment_text) VALUES ('optimize')")
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0

    def remove_paths(self, paths: Iterable[str]) -> list[int]:
        """Forget these files (items and failures); returns the removed segment ids."""
        keys = [key for key in map(self._key, paths) if key is not None]
        with self._transaction() as db:
            removed = self._delete_items(db, keys)
            db.executemany("DELETE FROM failures WHERE path = ?", [(k,) for k in keys])
        return removed

    def paths(self, under: str | None = None) -> set[str]:
        """Every known path (stored or failed), optionally only those strictly under a folder."""
        roots = self.root_map()
        if under is None:
            rows = self._read("SELECT path FROM items UNION SELECT path FROM failures")
            return {roots.absolute(r[0]) for r in rows}
        folder = normal_folder(str(under))
        prefixes = [stored_prefix(root.name) for root in roots.under(folder)]  # whole roots inside it
        inside = roots.stored(folder)
        if inside is not None:  # the part of the root holding it
            prefixes.append(inside if inside.endswith("/") else inside + "/")
        found: set[str] = set()
        for prefix in prefixes:
            low, high = prefix_range(prefix)
            rows = self._read("SELECT path FROM items WHERE path >= ?1 AND path < ?2 "
                              "UNION SELECT path FROM failures WHERE path >= ?1 AND path < ?2", (low, high))
            found.update(roots.absolute(r[0]) for r in rows)
        below = folder.rstrip("/") + "/"
        return {path for path in found if path.startswith(below)}

    def counts(self) -> dict[str, int]:
        return dict(self._read("SELECT modality, COUNT(*) FROM items GROUP BY modality ORDER BY modality"))

    def segment_count(self) -> int:
        return self._read("SELECT COUNT(*) FROM segments")[0][0]

    def failures(self) -> list[tuple[str, str]]:
        roots = self.root_map()
        return sorted((roots.absolute(r[0]), r[1]) for r in self._read("SELECT path, reason FROM failures"))

    # ------------------------------------------------------------------ segments

    def segments(self, ids: Sequence[int]) -> list[SegmentRow]:
        """The segments with these ids, in the order asked (unknown ids are skipped)."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        rows = self._read(
            'SELECT s.id, s.item_id, i.path, i.modality, s.start, s."end", s.source, s.text, s.labels, s.ocr, s.words '
            "FROM segments s JOIN items i ON i.id = s.item_id WHERE s.id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),))
        roots = self.root_map()
        by_id = {r[0]: SegmentRow(r[0], r[1], roots.absolute(r[2]), r[3], r[4], r[5], r[6], r[7], json.loads(r[8]), r[9],
                                  [tuple(w) for w in json.loads(r[10])]) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def segment_modalities(self, ids: Iterable[int]) -> dict[int, str]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        return dict(self._read("SELECT s.id, i.modality FROM segments s JOIN items i ON i.id = s.item_id "
                               "WHERE s.id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)))

    def item_segments(self, item_ids: Iterable[int], sources: Collection[str]) -> list[tuple[int, int, float, float, str]]:
        """(id, item_id, start, end, source) of these items' segments from `sources`."""
        item_ids = sorted({int(i) for i in item_ids})
        rows = []
        for first in range(0, len(item_ids), 500):
            part = item_ids[first:first + 500]
            marks, source_marks = ",".join("?" * len(part)), ",".join("?" * len(sources))
            rows += self._read('SELECT id, item_id, start, "end", source FROM segments '
                               f"WHERE item_id IN ({marks}) AND source IN ({source_marks})", [*part, *sources])
        return [(int(i), int(item), float(s or 0.0), float(e or 0.0), str(src)) for i, item, s, e, src in rows]

    def put_vectors(self, space: str, ids: np.ndarray, matrix: np.ndarray) -> None:
        """Add vectors of a space to existing segments in one transaction (ids deleted meanwhile are skipped)."""
        matrix = np.ascontiguousarray(matrix, dtype="<f4")
        rows = [(int(i), space, int(matrix.shape[1]), matrix[n].tobytes(), int(i)) for n, i in enumerate(ids)]
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO vectors (segment_id, space, dim, data) "
                           "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM segments WHERE id = ?)", rows)

    def switch_spaces(self, meta: dict[str, object], drop_spaces: Iterable[str]) -> None:
        """Set meta keys (None deletes) and drop whole vector spaces, all in ONE transaction."""
        with self._transaction() as db:
            for key, value in meta.items():
                if value is None:
                    db.execute("DELETE FROM meta WHERE key = ?", (key,))
                else:
                    db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                               "value = excluded.value", (key, json.dumps(value)))
            for space in drop_spaces:
                db.execute("DELETE FROM vectors WHERE space = ?", (space,))

    def version(self) -> tuple[int, int]:
        """Changes whenever the catalog does: commits by other connections (`PRAGMA data_version`)
        or by this one (`total_changes`). Cheap, so caches of derived data can check it per query."""
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0], self._db.total_changes

    def segment_ids_cached(self, modalities: Collection[str]) -> np.ndarray:
        """`segment_ids(modalities)`, reused until the catalog changes: a modality filter then costs a binary
        search per candidate instead of a SQL lookup of the candidates' modalities on every query."""
        key = tuple(sorted(modalities))
        version = self.version()
        cached = self._id_cache.get(key)
        if cached is None or cached[0] != version:
            ids = self.segment_ids(modalities)
            self._id_cache[key] = cached = (version, ids)
        return cached[1]

    def segment_ids(self, modalities: Collection[str] | None = None) -> np.ndarray:
        """Ids of every segment (of these modalities), sorted: the set a modality filter allows."""
        if modalities is None:
            rows = self._read("SELECT id FROM segments ORDER BY id")
        else:
            rows = self._read("SELECT s.id FROM segments s JOIN items i ON i.id = s.item_id "
                              "WHERE i.modality IN (SELECT value FROM json_each(?)) ORDER BY s.id",
                              (json.dumps(sorted(modalities)),))
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def lexical(self, query: str, k: int, modalities: Collection[str] | None = None) -> list[tuple[int, float]]:
        """Best `k` segments for the words of `query` by FTS5 bm25; score is -bm25, higher = better."""
        match = fts_query(query)
        if match is None or k <= 0:
            return []
        sql = ("SELECT f.rowid, -bm25(segment_text) AS score FROM segment_text f "
               "JOIN segments s ON s.id = f.rowid JOIN items i ON i.id = s.item_id "
               "WHERE segment_text MATCH ?")
        params: list[Any] = [match]
        if modalities is not None:
            sql += " AND i.modality IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(modalities)))
        sql += " ORDER BY bm25(segment_text) LIMIT ?"
        params.append(int(k))
        return [(r[0], float(r[1])) for r in self._read(sql, params)]

    # ------------------------------------------------------------------ vectors

    def vectors(self, space: str) -> tuple[np.ndarray, np.ndarray]:
        """(segment ids int64, matrix float32) of every vector in a space, sorted by id."""
        rows = self._read("SELECT segment_id, dim, data FROM vectors WHERE space = ? ORDER BY segment_id", (space,))
        return self._stack(rows)

    def vectors_for(self, space: str, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Like `vectors`, for chosen segment ids only (missing ones are skipped)."""
        ids = [int(i) for i in ids]
        if not ids:
            return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        rows = self._read("SELECT segment_id, dim, data FROM vectors WHERE space = ? AND segment_id IN "
                          "(SELECT value FROM json_each(?)) ORDER BY segment_id", (space, json.dumps(ids)))
        return self._stack(rows)

    def vector_ids(self, space: str) -> np.ndarray:
        rows = self._read("SELECT segment_id FROM vectors WHERE space = ? ORDER BY segment_id", (space,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def spaces(self) -> dict[str, int]:
        """space name -> dimension, for every space holding vectors."""
        return dict(self._read("SELECT space, MAX(dim) FROM vectors GROUP BY space ORDER BY space"))

    @staticmethod
    def _stack(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.empty((0, 0), dtype=np.float32)
        dim = rows[0][1]
        matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return ids, matrix.astype(np.float32, copy=False)

    # ------------------------------------------------------------------ key-value

    def meta(self, key: str, default: Any = None) -> Any:
        """A small JSON value stored with the collection (space config, model checksums)."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       (key, json.dumps(value)))

    # ------------------------------------------------------------------ health

    def integrity_errors(self) -> list[str]:
        """SQLite's integrity check plus our own invariants; empty when the catalog is sound."""
        errors = [r[0] for r in self._read("PRAGMA integrity_check") if r[0] != "ok"]
        errors += [f"foreign key violation in {r[0]} row {r[1]}" for r in self._read("PRAGMA foreign_key_check")]
        orphans = self._read("SELECT COUNT(*) FROM segment_text WHERE rowid NOT IN (SELECT id FROM segments)")[0][0]
        if orphans:
            errors.append(f"{orphans} text rows without a segment")
        for table in ("items", "failures"):
            rootless = self._read(f"SELECT COUNT(*) FROM {table} WHERE substr(path, 1, instr(path, '/') - 1) "
                                  "NOT IN (SELECT name FROM roots)")[0][0]
            if rootless:
                errors.append(f"{rootless} {table} stored under no root")
        return errors
