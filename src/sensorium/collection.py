"""A collection: a folder holding the catalog and vector indexes of the media a user indexed.

`Collection(dir).index(folder)` walks a folder and embeds new and changed files, skips unchanged
ones and forgets deleted ones; `search(...)` finds items by text, example image or spoken query.
The SQLite catalog is the source of truth (vectors included); the ANN files are derived and are
reconciled with it on open, so a `kill -9` at any moment loses at most the file being written.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ReadError, SensoriumError, UnsupportedFileError
from .experts import ExpertConfig, Experts
from .space.segments import AUDIO, AUDIO_DIM, CLIP, IMAGE, SHARED

CATALOG_FILE = "catalog.sqlite"
CONFIG_FILE = "collection.json"
MODEL_FIELDS = ("text_dir", "image_weights", "speech_dir", "clip_dir")  # what made the stored vectors
SPACES_DIR = "spaces"  # attached learned spaces, one folder per content id
ATTACHED_KEY, ATTACHING_KEY = "attached_space", "attaching_space"  # catalog meta keys
ATTACH_BATCH = 512
SAVE_EVERY_SECONDS = 30.0
IMAGE_BATCH = 16
READ_AHEAD = 8

Progress = Callable[[int, int, str], None]
AttachProgress = Callable[[int, int], None]  # (segments done, total); may raise to abort (tests)
ShouldStop = Callable[[], bool]  # polled between files; True ends the run early (each file is one transaction)


@dataclass
class IndexReport:
    """What one `index` run did. `failed` lists (path, reason) for each file that could not be read."""

    folder: str
    scanned: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    touched: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False  # stopped early by `should_stop`; files not reached are indexed next run
    seconds: float = 0.0
    read_seconds: float = 0.0
    encode_seconds: dict[str, float] = field(default_factory=dict)
    encoded_items: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in (
            "folder", "scanned", "added", "updated", "unchanged", "touched", "removed", "cancelled", "seconds",
            "read_seconds", "encode_seconds", "encoded_items")}
        out["failed"] = [{"path": p, "reason": r} for p, r in self.failed]
        return out


class Collection:
    """A persistent, incrementally updated cross-modal index stored in one folder."""

    def __init__(self, directory: str | Path, experts: ExpertConfig | None = None):
        self.dir = Path(directory).expanduser().resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self._load_or_store_config(experts)
        self.experts = Experts(self.config)
        self._catalog = None
        self._stores: dict[str, object] = {}
        self._attached = None  # the AttachedSpace last loaded, cached by its id

    # --- configuration ----------------------------------------------------------------------
    def _load_or_store_config(self, experts: ExpertConfig | None) -> ExpertConfig:
        path = self.dir / CONFIG_FILE
        if path.exists():
            stored = ExpertConfig.from_json(json.loads(path.read_text())["experts"])
            if experts is not None and experts != stored:
                self._refuse_model_change(stored, experts)
                self._write_config(experts)
                return experts
            return stored
        config = experts or ExpertConfig()
        self._write_config(config)
        return config

    def _refuse_model_change(self, stored: ExpertConfig, wanted: ExpertConfig) -> None:
        """Vectors from two different models do not share a space: once items are stored, the
        models that made them stay (switches such as OCR only affect files indexed later)."""
        changed = [name for name in MODEL_FIELDS if getattr(stored, name) != getattr(wanted, name)]
        if not changed or not (self.dir / CATALOG_FILE).exists():
            return
        from .errors import ConfigError
        from .index.catalog import Catalog

        catalog = Catalog(self.dir / CATALOG_FILE)  # __init__ runs this before the collection's own
        try:
            if not catalog.paths():
                return
        finally:
            catalog.close()

        described = ", ".join(f"{name} {getattr(stored, name) or 'packaged default'} -> "
                              f"{getattr(wanted, name) or 'packaged default'}" for name in changed)
        raise ConfigError(f"{self.dir}: its items were embedded with other models ({described}); "
                          "index into a new collection to use these models")

    def _write_config(self, config: ExpertConfig) -> None:
        path = self.dir / CONFIG_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": 1, "experts": config.to_json()}, indent=2))
        os.replace(tmp, path)

    # --- storage ----------------------------------------------------------------------------
    @property
    def catalog(self):
        if self._catalog is None:
            from .index.catalog import Catalog

            self._catalog = Catalog(self.dir / CATALOG_FILE)
        return self._catalog

    def spaces(self) -> dict[str, int]:
        """Space name -> dimension for every vector space this collection keeps."""
        dims = {SHARED: 384, IMAGE: 1280, AUDIO: AUDIO_DIM}
        if self.config.clip_dir:
            dims[CLIP] = self.experts.clip.dim
        attached = self.attached_space()
        if attached is not None:
            dims[attached.name] = attached.dim
        return dims

    # --- attached learned space -------------------------------------------------------------
    def attached_space(self):
        """The learned space search and indexing use (`sensorium.space.learned.AttachedSpace`), or None."""
        record = self.catalog.meta(ATTACHED_KEY)
        if not record:
            return None
        if self._attached is None or self._attached.id != record["id"]:
            from .space.learned import AttachedSpace

            self._attached = AttachedSpace.load(self.dir / record["folder"])
        return self._attached

    def attach_space(self, folder: str | Path, progress: AttachProgress | None = None,
                     batch: int = ATTACH_BATCH) -> dict:
        """Attach a `sensorium align` output: copy it in, give every segment one of its item heads can
        read (image/shot segments: image head; sound windows: audio head) a learned vector from its
        stored vectors, then switch to it in one transaction. Safe to interrupt at any point (the
        previous space stays in use); calling again resumes where it stopped."""
        from .index.lock import WriterLock

        with WriterLock(self.dir):
            return self._attach_locked(Path(folder), progress, batch)

    def _attach_locked(self, folder: Path, progress: AttachProgress | None, batch: int) -> dict:
        import numpy as np

        from .space import learned
        from .errors import ConfigError
        from .index.vectors import VectorStore

        started = time.perf_counter()
        candidate = learned.AttachedSpace.load(folder)
        catalog = self.catalog
        missing = learned.inputs_missing(catalog, candidate)
        if missing:
            head, missing_inputs = next(iter(missing.items()))
            raise ConfigError(f"space {folder}: its {head} head reads {'+'.join(candidate.inputs[head])} "
                              f"vectors, but this collection stores no {', '.join(missing_inputs)} vectors "
                              "(index its files again with this version to add them)")
        target = learned.install(candidate, self.dir / SPACES_DIR)
        record = {"id": candidate.id, "folder": f"{SPACES_DIR}/{candidate.id}", "name": candidate.name,
                  "dim": candidate.dim, "weight": candidate.weight, "source": str(folder.expanduser().resolve())}
        current = catalog.meta(ATTACHED_KEY)
        if not current or current["id"] != candidate.id:
            catalog.set_meta(ATTACHING_KEY, record)
        loaded = learned.AttachedSpace.load(target)
        store = VectorStore(self.dir / "vectors", loaded.name, loaded.dim)
        store.sync_with(catalog)
        todo = learned.missing_ids(catalog, loaded)
        total, done = len(todo), 0
        if progress:
            progress(0, total)
        for first in range(0, total, batch):
            ids = todo[first:first + batch]
            stored: dict[int, dict[str, np.ndarray]] = {int(i): {} for i in ids}
            for name in {n for head in loaded.item_heads for n in loaded.inputs[head]}:
                got, matrix = catalog.vectors_for(name, ids)
                for i, vector in zip(got.tolist(), matrix):
                    stored[i][name] = vector
            segments = [_Stored(i, vectors) for i, vectors in stored.items()]
            embedded = loaded.embed_segments(segments)
            if embedded:
                ids = np.asarray([segments[n].id for n in sorted(embedded)], dtype=np.int64)
                vectors = np.stack([embedded[n] for n in sorted(embedded)])
                catalog.put_vectors(loaded.name, ids, vectors)  # committed: the truth
                store.add(ids, vectors, new=True)  # ids the space lacked (missing_ids)
            done += len(todo[first:first + batch])
            if progress:
                progress(done, total)
        store.save()
        stale = [name for name in learned.learned_spaces(catalog) if name != loaded.name]
        catalog.switch_spaces({ATTACHED_KEY: record, ATTACHING_KEY: None}, stale)
        self._forget_spaces(stale, keep=candidate.id)
        self._attached = loaded
        self._stores.pop(loaded.name, None)
        return {"space": loaded.summary(), "embedded": total, "vectors": len(catalog.vector_ids(loaded.name)),
                "seconds": time.perf_counter() - started}

    def detach_space(self) -> bool:
        """Stop using the attached space and delete its vectors; True when one was attached."""
        from .space import learned
        from .index.lock import WriterLock

        with WriterLock(self.dir):
            current = self.catalog.meta(ATTACHED_KEY)
            stale = learned.learned_spaces(self.catalog)
            self.catalog.switch_spaces({ATTACHED_KEY: None, ATTACHING_KEY: None}, stale)
            self._forget_spaces(stale + ([current["name"]] if current else []), keep=None)
            self._attached = None
            return current is not None

    def _forget_spaces(self, names: list[str], keep: str | None) -> None:
        """Remove derived files of spaces no longer in the catalog: ANN files and copied folders."""
        import shutil

        from .index.vectors import remove_files

        for name in names:
            self._stores.pop(name, None)
            remove_files(self.dir / "vectors", name)
        spaces_dir = self.dir / SPACES_DIR
        if spaces_dir.is_dir():
            for entry in spaces_dir.iterdir():
                if entry.name != keep:
                    shutil.rmtree(entry, ignore_errors=True)

    def store(self, space: str):
        """The ANN index of one space, reconciled with the catalog when first opened."""
        if space not in self._stores:
            from .index.vectors import VectorStore

            store = VectorStore(self.dir / "vectors", space, self.spaces()[space])
            store.sync_with(self.catalog)
            self._stores[space] = store
        return self._stores[space]

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        self._stores.clear()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- indexing ---------------------------------------------------------------------------
    def index(self, folder: str | Path, progress: Progress | None = None,
              should_stop: ShouldStop | None = None) -> IndexReport:
        """Embed new and changed files under `folder`, skip unchanged ones, drop deleted ones."""
        from .index.lock import WriterLock

        with WriterLock(self.dir):
            return self._index_locked(Path(folder).expanduser().resolve(), progress, should_stop)

    def _index_locked(self, folder: Path, progress: Progress | None,
                      should_stop: ShouldStop | None = None) -> IndexReport:
        from .index.catalog import FileState
        from .index.scan import content_hash, scan

        if not folder.is_dir():
            raise SensoriumError(f"{folder}: not a folder")
        started = time.perf_counter()
        report = IndexReport(folder=str(folder))
        catalog = self.catalog
        stores = {space: self.store(space) for space in self.spaces()}

        seen: set[str] = set()
        todo: list[tuple[FileState, str]] = []
        for scanned in scan(folder, exclude=[self.dir]):
            path = str(scanned.path)
            seen.add(path)
            report.scanned += 1
            known = catalog.item_state(path)
            if known and known.size == scanned.size and known.mtime_ns == scanned.mtime_ns:
                report.unchanged += 1
                continue
            state = FileState(path, scanned.size, scanned.mtime_ns, None)
            try:
                state.content_hash = content_hash(scanned.path)
            except OSError as error:
                self._fail(report, state, scanned.kind, f"cannot read file: {error.strerror or error}")
                continue
            if known and known.content_hash == state.content_hash and (catalog.item(path) is not None):
                catalog.touch(path, scanned.size, scanned.mtime_ns)
                report.touched += 1
                continue
            todo.append((state, scanned.kind))

        gone = catalog.paths(under=str(folder)) - seen
        if gone:
            removed_ids = catalog.remove_paths(sorted(gone))
            for store in stores.values():
                store.remove(removed_ids)
            report.removed = len(gone)

        self._embed_all(todo, report, stores, progress, should_stop)
        for store in stores.values():
            store.save()
        report.seconds = time.perf_counter() - started
        return report

    def _embed_all(self, todo, report: IndexReport, stores, progress: Progress | None,
                   should_stop: ShouldStop | None = None) -> None:
        from .heap import release_free_memory
        from .space.embed import Embedder

        embedder = Embedder(self.experts)
        total = len(todo)
        done = 0
        last_save = time.perf_counter()
        pending_images: list = []

        def flush_images() -> None:
            nonlocal done
            if not pending_images:
                return
            began = time.perf_counter()
            try:
                results = embedder.embed_images([payload for _, _, payload in pending_images])
            except Exception:  # noqa: BLE001 - one bad image must not fail its batch: retry one by one
                results = None
            self._time(report, "image", began, len(pending_images))
            for index, (state, kind, payload) in enumerate(pending_images):
                if results is None:
                    try:
                        segments = embedder.embed_images([payload])[0]
                    except Exception as error:  # noqa: BLE001 - recorded per file
                        self._fail(report, state, kind, f"image encoder failed: {_reason(error)}")
                        continue
                else:
                    segments = results[index]
                self._store(report, state, kind, None, {"width": payload.size[0], "height": payload.size[1]},
                            segments, stores)
            done += len(pending_images)
            pending_images.clear()
            release_free_memory()  # the batch's decoded pixels and OCR tensors, back to the OS

        for state, kind, payload, read_time, error in self._read_ahead(todo):
            if should_stop is not None and should_stop():
                report.cancelled = True
                break
            report.read_seconds += read_time
            if error is not None:
                self._fail(report, state, kind, error)
                done += 1
            elif kind == "image":
                pending_images.append((state, kind, payload))
                if len(pending_images) >= IMAGE_BATCH:
                    flush_images()
            else:
                began = time.perf_counter()
                try:
                    segments = embedder.embed(payload)
                except Exception as error:  # noqa: BLE001 - one bad file never stops the batch
                    self._fail(report, state, kind, f"{kind} encoder failed: {_reason(error)}")
                else:
                    self._time(report, kind, began, 1)
                    self._store(report, state, kind, _duration(payload), _meta(payload), segments, stores)
                release_free_memory()
                done += 1
            if progress:
                progress(done + len(pending_images), total, state.path)
            if time.perf_counter() - last_save > SAVE_EVERY_SECONDS:
                for store in stores.values():
                    store.save()
                last_save = time.perf_counter()
        flush_images()
        if progress and not report.cancelled:
            progress(total, total, "")

    def _read_ahead(self, todo) -> Iterator[tuple]:
        """Decode files in a background thread while the encoders work on earlier ones."""
        from .readers import read

        def load(entry):
            state, kind = entry
            began = time.perf_counter()
            try:
                payload = read(state.path)
                return state, kind, payload, time.perf_counter() - began, None
            except UnsupportedFileError as error:
                return state, kind, None, time.perf_counter() - began, error.reason
            except ReadError as error:
                return state, kind, None, time.perf_counter() - began, error.reason
            except Exception as error:  # noqa: BLE001 - a reader bug must not stop the batch
                return state, kind, None, time.perf_counter() - began, f"unexpected {type(error).__name__}: {error}"

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sensorium-read") as pool:
            window = []
            entries = iter(todo)
            for entry in entries:
                window.append(pool.submit(load, entry))
                if len(window) >= READ_AHEAD:
                    yield window.pop(0).result()
            for future in window:
                yield future.result()

    def _store(self, report, state, kind, duration, meta, segments, stores) -> None:
        from .index.catalog import NewSegment

        was_known = self.catalog.item(state.path) is not None
        self._add_learned(segments, stores)
        rows = [NewSegment(start=s.start, end=s.end, source=s.source, text=s.text, labels=s.labels,
                           vectors=s.vectors) for s in segments]
        _, new_ids, removed_ids = self.catalog.put_item(state, kind, duration, meta, rows)
        for space, store in stores.items():
            if removed_ids:
                store.remove(removed_ids)
            ids = [i for i, s in zip(new_ids, segments) if space in s.vectors]
            if ids:
                import numpy as np

                store.add(np.asarray(ids, dtype=np.int64),  # fresh catalog ids
                          np.stack([s.vectors[space] for s in segments if space in s.vectors]), new=True)
        if was_known:
            report.updated += 1
        else:
            report.added += 1

    def _add_learned(self, segments, stores) -> None:
        """New image/shot segments and sound windows get the attached space's vector too, in the same
        transaction (each from the head that reads its stored vectors)."""
        attached = self.attached_space()
        if attached is None or attached.name not in stores:
            return
        for position, vector in attached.embed_segments(segments).items():
            segments[position].vectors[attached.name] = vector

    def _fail(self, report, state, kind, reason: str) -> None:
        self.catalog.record_failure(state, kind, reason)
        report.failed.append((state.path, reason))

    @staticmethod
    def _time(report, kind: str, began: float, count: int) -> None:
        report.encode_seconds[kind] = report.encode_seconds.get(kind, 0.0) + time.perf_counter() - began
        report.encoded_items[kind] = report.encoded_items.get(kind, 0) + count

    # --- reading back -----------------------------------------------------------------------
    def search(self, text: str | None = None, image: str | Path | None = None,
               audio: str | Path | None = None, kind: str | None = None, k: int = 10):
        """Top-k items for a text, example-image or spoken query; see `sensorium.search.Hit`."""
        from .search import search

        return search(self, text=text, image=image, audio=audio, kind=kind, k=k)

    def info(self) -> dict:
        catalog = self.catalog
        return {
            "collection": str(self.dir),
            "counts": catalog.counts(),
            "segments": catalog.segment_count(),
            "failures": [{"path": p, "reason": r} for p, r in catalog.failures()],
            "experts": json.loads(self.config.to_json()),
            "space": self._space_info(),
        }

    def _space_info(self) -> dict | None:
        attached = self.attached_space()
        if attached is None:
            pending = self.catalog.meta(ATTACHING_KEY)
            return {"attached": False, "pending": pending} if pending else None
        out = attached.summary()
        out["source"] = (self.catalog.meta(ATTACHED_KEY) or {}).get("source", "")
        out["attached"] = True
        out["vectors"] = int(len(self.catalog.vector_ids(attached.name)))
        out["pending"] = self.catalog.meta(ATTACHING_KEY)
        return out


@dataclass
class _Stored:
    """A stored segment's vectors read back from the catalog, shaped like a new Segment for the heads."""

    id: int
    vectors: dict


def stored_experts(directory: str | Path) -> ExpertConfig | None:
    """The expert settings a collection folder was created with, or None for a new one."""
    path = Path(directory).expanduser() / CONFIG_FILE
    if not path.is_file():
        return None
    return ExpertConfig.from_json(json.loads(path.read_text())["experts"])


def _reason(error: Exception) -> str:
    """Our own errors already read as a sentence; anything else gets its type named."""
    if isinstance(error, SensoriumError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _duration(payload) -> float | None:
    return float(payload.duration) if hasattr(payload, "duration") else None


def _meta(payload) -> dict:
    meta: dict = {}
    if getattr(payload, "modality", None) == "text":
        meta["encoding"] = payload.encoding
        meta["chars"] = len(payload.text)
    if getattr(payload, "modality", None) == "video":
        meta["frames"] = len(payload.frames)
        meta["has_audio"] = payload.audio is not None
    return meta
