"""A collection: a folder holding the catalog and vector indexes of the media a user indexed.

`Collection(dir).index(folder)` walks a folder and embeds new and changed files, skips unchanged
ones and forgets deleted ones; `search(...)` finds items by text, example image or spoken query.
The collection keeps configuration and storage handles and takes the writer lock; the work is done
by `sensorium.indexing` (the pipeline) and `sensorium.attaching` (learned spaces), handed its parts.
The SQLite catalog is the source of truth (vectors included); the ANN files are derived and are
reconciled with it on open, so a `kill -9` at any moment loses at most the file being written.
Files are stored relative to named roots (the folders indexed), so moved media are re-attached, not
re-embedded: on open when the collection moved with them, by `index` at their new place, or by
`set_root` (`sensorium.index.relocate`); `notices` says what was done and which roots are missing.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from . import attaching
from .attaching import ATTACH_BATCH, ATTACHED_KEY, ATTACHING_KEY, SPACES_DIR, AttachProgress  # noqa: F401 - re-exported
from .experts import ExpertConfig, Experts
from .indexing import IMAGE_BATCH, READ_AHEAD, SAVE_EVERY_SECONDS, IndexReport, Progress, ShouldStop  # noqa: F401 - re-exported
from .space.segments import AUDIO, AUDIO_DIM, CLIP, IMAGE, SHARED

CATALOG_FILE = "catalog.sqlite"
CONFIG_FILE = "collection.json"
MODEL_FIELDS = ("text_dir", "image_weights", "speech_dir", "clip_dir")  # what made the stored vectors


class Collection:
    """A persistent, incrementally updated cross-modal index stored in one folder."""

    def __init__(self, directory: str | Path, experts: ExpertConfig | None = None):
        self.dir = Path(directory).expanduser().resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self._load_or_store_config(experts)
        self.experts = Experts(self.config)
        self._catalog = None
        self._stores: dict[str, object] = {}
        self._store_layouts: dict[str, object] = {}  # space -> the Layout its open store was opened in
        self._attached = None  # the AttachedSpace last loaded, cached by its id
        self._writing = False  # this object holds the writer lock (nested writes must not take it again)
        self.notices: list[str] = []  # roots re-attached on open, for the CLI and service to show

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
            self._reattach_moved_roots()
        return self._catalog

    @contextmanager
    def _writer(self):
        """The writer lock for this object's writes (taken once even when writes nest)."""
        from .index.lock import WriterLock

        if self._writing:
            yield
            return
        with WriterLock(self.dir):
            self._writing = True
            try:
                yield
            finally:
                self._writing = False

    def _reattach_moved_roots(self) -> None:
        """When the collection moved together with its media, follow them (only if no other process is
        writing: a busy collection is re-attached the next time it is opened)."""
        from .errors import CollectionLockedError
        from .index.relocate import missing_roots, reattach_moved

        if not any(root.relative for root in missing_roots(self._catalog)):
            return
        try:
            with self._writer():
                self.notices += reattach_moved(self._catalog, self.dir)
        except CollectionLockedError:
            pass

    # --- roots --------------------------------------------------------------------------------
    def roots(self) -> list[dict]:
        """Each root: name, folder, items and failures stored under it, and whether its files are there."""
        from .index.relocate import is_missing

        counts = self.catalog.root_counts()
        return [{"name": root.name, "path": root.path, "items": counts.get(root.name, (0, 0))[0],
                 "failures": counts.get(root.name, (0, 0))[1], "missing": is_missing(self.catalog, root)}
                for root in self.catalog.roots()]

    def set_root(self, name: str, folder: str | Path) -> dict:
        """Point root `name` at `folder` (a moved media folder), or name a new root there. Nothing is
        re-embedded; returns the old and new folders and how many sampled files were found there."""
        from .index.relocate import evidence

        folder = Path(folder).expanduser().resolve()
        with self._writer():
            before, moved = self.catalog.set_root(name, folder)
            proof = evidence(self.catalog, name, folder)
        return {"name": name, "from": before.path if before else None, "to": str(folder),
                "moved": [{"name": root.name, "path": root.path} for root in moved],
                "sampled": proof.sampled, "found": proof.found}

    def root_notices(self) -> list[str]:
        """What was re-attached on open, then one sentence per root whose files cannot be found."""
        from .index.relocate import missing_notices

        return [*self.notices, *missing_notices(self.catalog)]

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
        previous space stays in use); calling again resumes where it stopped (`sensorium.attaching`)."""
        with self._writer():
            attached = attaching.attach(self.catalog, self.dir, Path(folder), progress, batch)
            self._drop_stores(attached.dropped + [attached.space.name])
            self._attached = attached.space
            return attached.summary

    def detach_space(self) -> bool:
        """Stop using the attached space and delete its vectors; True when one was attached."""
        with self._writer():
            was_attached, dropped = attaching.detach(self.catalog, self.dir)
            self._drop_stores(dropped)
            self._attached = None
            return was_attached

    def _drop_stores(self, names: list[str]) -> None:
        """Forget open ANN stores of spaces whose files were replaced or removed."""
        for name in names:
            self._stores.pop(name, None)
            self._store_layouts.pop(name, None)

    def store(self, space: str):
        """The ANN index of one space, in its layout, reconciled with the catalog when first opened.
        A space another process moved to another layout (`sensorium layout`) is reopened in it: a
        running service follows the switch instead of searching the deleted files' emptiness."""
        from .index.layouts import layout_of

        layout = layout_of(self.catalog, space)
        if space in self._stores and self._store_layouts.get(space) is not layout:
            self._drop_stores([space])
        if space not in self._stores:
            from .index.layouts import open_store

            store = open_store(self.dir / "vectors", space, self.spaces()[space], layout)
            store.sync_with(self.catalog)
            self._stores[space] = store
            self._store_layouts[space] = layout
        return self._stores[space]

    def layouts(self):
        """Space name -> `sensorium.index.layouts.Layout` for every space (default: HNSW)."""
        from .index.layouts import layout_of

        return {space: layout_of(self.catalog, space) for space in self.spaces()}

    def layout_notices(self) -> list[str]:
        """A sentence for every open space in the default layout that has grown past
        `SUGGEST_COMPRESSED_AT` vectors, naming the command that moves it to the compressed one."""
        from .index.layouts import SUGGEST_COMPRESSED_AT, Layout, layout_bytes

        notices = []
        for space, layout in self.layouts().items():
            count = len(self._stores[space]) if space in self._stores else 0
            if layout is Layout.HNSW and count >= SUGGEST_COMPRESSED_AT:
                dim = self.spaces()[space]
                notices.append(f"space {space!r} holds {count:,} vectors: ~{layout_bytes(layout, dim, count) / 1e9:.1f} GB "
                               f"in the default layout, ~{layout_bytes(Layout.COMPRESSED, dim, count) / 1e9:.1f} GB "
                               f"compressed (`sensorium layout {space} compressed -c {self.dir}`)")
        return notices

    def set_layout(self, space: str, layout) -> dict:
        """Keep a space's vectors in another ANN layout: build it from the catalog's vectors, switch
        to it in one catalog write, then delete the old layout's files. Interrupted, the old layout
        stays in use (a half-built new one is finished or discarded by the next call)."""
        from .errors import ConfigError
        from .index.layouts import Layout, choose_layout, file_bytes, open_store, parse_layout, remove_files

        layout = parse_layout(layout.value if isinstance(layout, Layout) else layout)
        spaces = self.spaces()
        if space not in spaces:
            raise ConfigError(f"space {space!r}: not one of this collection's spaces ({', '.join(spaces)})")
        with self._writer():
            old = self.layouts()[space]
            folder = self.dir / "vectors"
            if old is not layout:
                store = open_store(folder, space, spaces[space], layout)
                store.sync_with(self.catalog)
                store.save()
                choose_layout(self.catalog, space, layout)
                self._drop_stores([space])
                remove_files(folder, space, old)
            return {"space": space, "layout": layout.value, "was": old.value, "vectors": len(self.store(space)),
                    "bytes": file_bytes(folder, space, layout)}

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        self._stores.clear()
        self._store_layouts.clear()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- indexing ---------------------------------------------------------------------------
    def index(self, folder: str | Path, progress: Progress | None = None,
              should_stop: ShouldStop | None = None, workers: int | None = None, ray: str | bool | None = None,
              pool=None) -> IndexReport:
        """Embed new and changed files under `folder`, skip unchanged ones, drop deleted ones
        (`sensorium.indexing` runs the pipeline; this takes the writer lock and hands it the parts).

        `workers=N` reads and embeds in N local processes; `ray=True` (a local Ray) or `ray=ADDRESS`
        (a running cluster) in Ray actors, N of them or one per CPU; `pool` is a pool of your own
        from `sensorium.workers`, kept open for you to reuse and close. This process stays the only
        writer either way."""
        from .index.thumbnails import forget_thumbnails
        from .indexing import Indexer
        from .space.embed import Embedder

        from .workers import check_workers

        check_workers(workers)
        with self._writer():
            stores = {space: self.store(space) for space in self.spaces()}
            indexer = Indexer(self.catalog, stores, Embedder(self.experts), self.attached_space(), exclude=(self.dir,),
                              forget_derived=lambda paths: forget_thumbnails(self.dir, paths))
            made: list = []

            def make_pool():  # called only when there is something to embed: workers take seconds to start
                from .workers import make_pool as requested_pool

                made.append(requested_pool(workers, ray, self.config))
                return made[-1]

            try:
                return indexer.run(Path(folder).expanduser().resolve(), progress, should_stop, pool=pool,
                                   make_pool=None if pool is not None else make_pool)
            finally:
                for own in made:
                    if own is not None:
                        own.close()

    def forget(self, paths: Iterable[str | Path]) -> dict:
        """Remove these files (or every file under these folders) and everything derived from them: items,
        segments, transcript and OCR text (full-text index included), vectors in every space and shard,
        thumbnails. Deleted rows and vectors are overwritten, and the WAL is emptied, so their bytes
        are gone from the collection's files (the file system's free blocks are not ours to wipe).
        A file still on disk comes back at the next `index` of its folder: `still_on_disk` counts them."""
        from .index.thumbnails import forget_thumbnails

        with self._writer():
            catalog = self.catalog
            targets: set[str] = set()
            known = catalog.paths()
            for given in paths:
                path = str(Path(given).expanduser().resolve())
                if path in known:
                    targets.add(path)
                targets |= catalog.paths(under=path)
            if not targets:
                return {"items": 0, "segments": 0, "thumbnails": 0, "log_emptied": True, "still_on_disk": 0}
            removed = catalog.remove_paths(sorted(targets))
            for space in self.spaces():
                store = self.store(space)
                store.remove(removed)
                store.save()  # overwrites the removed vectors (`sensorium.index.vectors.scrub`)
            thumbnails = forget_thumbnails(self.dir, targets)
            emptied = catalog.scrub()
        return {"items": len(targets), "segments": len(removed), "thumbnails": thumbnails, "log_emptied": emptied,
                "still_on_disk": sum(os.path.exists(path) for path in targets)}

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
            "roots": self.roots(),
            "notices": self.root_notices(),
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


def stored_experts(directory: str | Path) -> ExpertConfig | None:
    """The expert settings a collection folder was created with, or None for a new one."""
    path = Path(directory).expanduser() / CONFIG_FILE
    if not path.is_file():
        return None
    return ExpertConfig.from_json(json.loads(path.read_text())["experts"])
