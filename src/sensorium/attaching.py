"""Attach and detach a learned space (a `sensorium align` output), handed a catalog and a collection folder.

`attach(catalog, directory, folder)` copies the space into `directory/spaces/<id>`, gives every
segment one of its item heads can read (image/shot segments: image head; sound windows: audio head)
a learned vector computed from its stored vectors, then switches to it in one catalog transaction.
`detach(catalog, directory)` switches away and deletes the learned vectors.

Both change the catalog first and delete derived files (ANN files, copied space folders) after, so a
crash at any point leaves a consistent collection: an interrupted attach keeps the previous space in
use, and attaching again resumes (segments that already hold a vector of the new space are skipped).
Like `sensorium.indexing`, this never imports `collection.py`: the collection takes the writer lock,
hands over its catalog and folder, and drops its cached stores of the spaces named in the result.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPACES_DIR = "spaces"  # attached learned spaces, one folder per content id
VECTORS_DIR = "vectors"  # ANN files, one set per space
ATTACHED_KEY, ATTACHING_KEY = "attached_space", "attaching_space"  # catalog meta keys
ATTACH_BATCH = 512

AttachProgress = Callable[[int, int], None]  # (segments done, total); may raise to abort (tests)


@dataclass
class Attached:
    """What `attach` did: the space now in use, the learned spaces it replaced (their vectors and
    files are gone) and the summary `Collection.attach_space` returns."""

    space: object  # sensorium.space.learned.AttachedSpace
    dropped: list[str]
    summary: dict


def attach(catalog, directory: Path, folder: Path, progress: AttachProgress | None = None,
           batch: int = ATTACH_BATCH) -> Attached:
    """Attach the space in `folder` to the collection in `directory` (caller holds the writer lock)."""
    from .errors import ConfigError
    from .index.layouts import forget_layouts, layout_of, open_store
    from .space import learned

    started = time.perf_counter()
    candidate = learned.AttachedSpace.load(folder)
    missing = learned.inputs_missing(catalog, candidate)
    if missing:
        head, missing_inputs = next(iter(missing.items()))
        raise ConfigError(f"space {folder}: its {head} head reads {'+'.join(candidate.inputs[head])} "
                          f"vectors, but this collection stores no {', '.join(missing_inputs)} vectors "
                          "(index its files again with this version to add them)")
    target = learned.install(candidate, directory / SPACES_DIR)
    record = {"id": candidate.id, "folder": f"{SPACES_DIR}/{candidate.id}", "name": candidate.name,
              "dim": candidate.dim, "weight": candidate.weight, "source": str(folder.expanduser().resolve())}
    current = catalog.meta(ATTACHED_KEY)
    if not current or current["id"] != candidate.id:
        catalog.set_meta(ATTACHING_KEY, record)
    loaded = learned.AttachedSpace.load(target)
    store = open_store(directory / VECTORS_DIR, loaded.name, loaded.dim, layout_of(catalog, loaded.name))
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
            new_ids = np.asarray([segments[n].id for n in sorted(embedded)], dtype=np.int64)
            vectors = np.stack([embedded[n] for n in sorted(embedded)])
            catalog.put_vectors(loaded.name, new_ids, vectors)  # committed: the truth
            store.add(new_ids, vectors, new=True)  # ids the space lacked (missing_ids)
        done += len(ids)
        if progress:
            progress(done, total)
    store.save()
    stale = [name for name in learned.learned_spaces(catalog) if name != loaded.name]
    catalog.switch_spaces({ATTACHED_KEY: record, ATTACHING_KEY: None}, stale)
    forget_spaces(directory, stale, keep=candidate.id)
    forget_layouts(catalog, stale)
    summary = {"space": loaded.summary(), "embedded": total, "vectors": len(catalog.vector_ids(loaded.name)),
               "seconds": time.perf_counter() - started}
    return Attached(loaded, stale, summary)


def detach(catalog, directory: Path) -> tuple[bool, list[str]]:
    """Stop using the attached space and delete its vectors (caller holds the writer lock):
    (whether one was attached, the learned spaces dropped)."""
    from .index.layouts import forget_layouts
    from .space import learned

    current = catalog.meta(ATTACHED_KEY)
    stale = learned.learned_spaces(catalog)
    catalog.switch_spaces({ATTACHED_KEY: None, ATTACHING_KEY: None}, stale)
    dropped = stale + ([current["name"]] if current else [])
    forget_spaces(directory, dropped, keep=None)
    forget_layouts(catalog, dropped)
    return current is not None, dropped


def forget_spaces(directory: Path, names: list[str], keep: str | None) -> None:
    """Remove derived files of spaces no longer in the catalog: ANN files of either layout and
    copied folders (every folder under spaces/ but `keep`)."""
    import shutil

    from .index.layouts import Layout, remove_files

    for name in names:
        for layout in Layout:
            remove_files(directory / VECTORS_DIR, name, layout)
    spaces_dir = directory / SPACES_DIR
    if spaces_dir.is_dir():
        for entry in spaces_dir.iterdir():
            if entry.name != keep:
                shutil.rmtree(entry, ignore_errors=True)


@dataclass
class _Stored:
    """A stored segment's vectors read back from the catalog, shaped like a new Segment for the heads."""

    id: int
    vectors: dict
