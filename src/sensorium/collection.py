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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .experts import ExpertConfig, Experts
from .indexing import IMAGE_BATCH, READ_AHEAD, SAVE_EVERY_SECONDS, IndexReport, Progress, ShouldStop  # noqa: F401 - re-exported
from .space.segments import AUDIO, AUDIO_DIM, CLIP, IMAGE, SHARED

CATALOG_FILE = "catalog.sqlite"
CONFIG_FILE = "collection.json"
MODEL_FIELDS = ("text_dir", "image_weights", "speech_dir", "clip_dir")  # what made the stored vectors
SPACES_DIR = "spaces"  # attached learned spaces, one folder per content id
ATTACHED_KEY, ATTACHING_KEY = "attached_space", "attaching_space"  # catalog meta keys
ATTACH_BATCH = 512

AttachProgress = Callable[[int, int], None]  # (segments done, total); may raise to abort (tests)


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
        """Embed new and changed files under `folder`, skip unchanged ones, drop deleted ones
        (`sensorium.indexing` runs the pipeline; this takes the writer lock and hands it the parts)."""
        from .index.lock import WriterLock
        from .indexing import Indexer
        from .space.embed import Embedder

        with WriterLock(self.dir):
            stores = {space: self.store(space) for space in self.spaces()}
            indexer = Indexer(self.catalog, stores, Embedder(self.experts), self.attached_space(), exclude=(self.dir,))
            return indexer.run(Path(folder).expanduser().resolve(), progress, should_stop)

    # --- reading back -----------------------------------------------------------------------
    def search(self, text: str | None = None, image: str | Path | None = None,
               audio: str | Path | None = None, modality: str | None = None, k: int = 10,
               kind: str | None = None):
        """Top-k items for a text, example-image or spoken query; see `sensorium.search.Hit`.
        `modality` keeps one modality's items (`kind` is its older name)."""
        from .search import search

        return search(self, text=text, image=image, audio=audio, modality=modality, k=k, kind=kind)

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
