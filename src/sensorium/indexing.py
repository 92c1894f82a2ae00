"""scan -> read -> embed -> store: the indexing pipeline, handed its catalog, stores and embedder.

`Indexer(catalog, stores, embedder, attached, exclude).run(folder)` walks a folder, embeds new and
changed files, touches files whose content did not change, and forgets deleted ones. It knows
nothing of the `Collection` that builds it (the collection takes the writer lock and hands over
what the run needs), so the pipeline can be read, tested and changed on its own.

Why it is shaped this way:
- each file is one catalog transaction (`Catalog.put_item`), so a `kill -9` loses at most the file
  being written; the ANN stores are a cache saved every `SAVE_EVERY_SECONDS` and at the end;
- files are decoded in a background thread (`READ_AHEAD` ahead) while the experts work;
- photos are embedded in batches of `IMAGE_BATCH` (the image expert runs once per batch), and a
  batch that fails is retried one photo at a time, so one bad photo never fails its neighbours;
- one bad file never stops the run: its reason is recorded in the catalog and the report;
- a deleted or changed file leaves nothing of its old version behind: its thumbnails are forgotten
  (`forget_derived`), the vector stores overwrite removed vectors on save, and the catalog is
  scrubbed (`Catalog.scrub`) at the end of a run that removed or replaced anything.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ReadError, SensoriumError, UnsupportedFileError
from .modality import IMAGE, TEXT, VIDEO

SAVE_EVERY_SECONDS = 30.0
IMAGE_BATCH = 16
READ_AHEAD = 8

Progress = Callable[[int, int, str], None]  # (files done, total, current path)
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
    notices: list[str] = field(default_factory=list)  # e.g. a moved root re-attached instead of re-indexed
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
            "read_seconds", "encode_seconds", "encoded_items", "notices")}
        out["failed"] = [{"path": p, "reason": r} for p, r in self.failed]
        return out


class Indexer:
    """One indexing run's collaborators: the catalog (truth), the ANN stores by space name, the
    embedder, the attached learned space (or None) and folders never to scan (the collection's own)."""

    def __init__(self, catalog, stores: dict, embedder, attached=None, exclude: tuple[Path, ...] = (),
                 forget_derived: Callable[[list[str]], object] | None = None):
        self.catalog = catalog
        self.stores = stores
        self.embedder = embedder
        self.attached = attached
        self.exclude = list(exclude)
        self.forget_derived = forget_derived  # deletes what was made from a file outside the catalog (thumbnails)
        self._replaced: list[str] = []  # files whose older version was stored: it must leave no trace

    def run(self, folder: Path, progress: Progress | None = None, should_stop: ShouldStop | None = None) -> IndexReport:
        """Embed new and changed files under `folder`, skip unchanged ones, drop deleted ones."""
        from .index.catalog import FileState
        from .index.relocate import claim_moved
        from .index.scan import content_hash, scan

        if not folder.is_dir():
            raise SensoriumError(f"{folder}: not a folder")
        started = time.perf_counter()
        report = IndexReport(folder=str(folder))
        catalog = self.catalog
        report.notices += claim_moved(catalog, str(folder))  # a moved root's files are re-attached, not re-embedded
        catalog.add_root(str(folder))  # files are stored relative to the folder indexed

        seen: set[str] = set()
        todo: list[tuple[FileState, str]] = []
        for scanned in scan(folder, exclude=self.exclude):
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
                self._fail(report, state, scanned.modality, f"cannot read file: {error.strerror or error}")
                continue
            if known and known.content_hash == state.content_hash and (catalog.item(path) is not None):
                catalog.touch(path, scanned.size, scanned.mtime_ns)
                report.touched += 1
                continue
            todo.append((state, scanned.modality))

        gone = catalog.paths(under=str(folder)) - seen
        if gone:
            removed_ids = catalog.remove_paths(sorted(gone))
            for store in self.stores.values():
                store.remove(removed_ids)
            report.removed = len(gone)

        self._embed_all(todo, report, progress, should_stop)
        self._save()
        if gone or self._replaced:
            if self.forget_derived is not None:
                self.forget_derived(sorted(gone) + self._replaced)
            catalog.scrub()
        report.seconds = time.perf_counter() - started
        return report

    def _save(self) -> None:
        for store in self.stores.values():
            store.save()

    def _embed_all(self, todo, report: IndexReport, progress: Progress | None, should_stop: ShouldStop | None) -> None:
        from .heap import release_free_memory

        embedder = self.embedder
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
            _time(report, IMAGE, began, len(pending_images))
            for index, (state, modality, payload) in enumerate(pending_images):
                if results is None:
                    try:
                        segments = embedder.embed_images([payload])[0]
                    except Exception as error:  # noqa: BLE001 - recorded per file
                        self._fail(report, state, modality, f"image encoder failed: {_reason(error)}")
                        continue
                else:
                    segments = results[index]
                self._store(report, state, modality, None, {"width": payload.size[0], "height": payload.size[1]},
                            segments)
            done += len(pending_images)
            pending_images.clear()
            release_free_memory()  # the batch's decoded pixels and OCR tensors, back to the OS

        for state, modality, payload, read_time, error in read_ahead(todo):
            if should_stop is not None and should_stop():
                report.cancelled = True
                break
            report.read_seconds += read_time
            if error is not None:
                self._fail(report, state, modality, error)
                done += 1
            elif modality == IMAGE:
                pending_images.append((state, modality, payload))
                if len(pending_images) >= IMAGE_BATCH:
                    flush_images()
            else:
                began = time.perf_counter()
                try:
                    segments = embedder.embed(payload)
                except ReadError as error:  # a recording read in windows can fail (truncated, silent) late
                    self._fail(report, state, modality, error.reason)
                except Exception as error:  # noqa: BLE001 - one bad file never stops the batch
                    self._fail(report, state, modality, f"{modality} encoder failed: {_reason(error)}")
                else:
                    _time(report, modality, began, 1)
                    self._store(report, state, modality, _duration(payload), _meta(payload), segments)
                release_free_memory()
                done += 1
            if progress:
                progress(done + len(pending_images), total, state.path)
            if time.perf_counter() - last_save > SAVE_EVERY_SECONDS:
                self._save()
                last_save = time.perf_counter()
        flush_images()
        if progress and not report.cancelled:
            progress(total, total, "")

    def _store(self, report: IndexReport, state, modality: str, duration, meta: dict, segments) -> None:
        from .index.catalog import NewSegment

        was_known = self.catalog.item(state.path) is not None
        self._add_learned(segments)
        rows = [NewSegment(start=s.start, end=s.end, source=s.source, text=s.text, labels=s.labels,
                           vectors=s.vectors, ocr=s.ocr, words=s.words) for s in segments]
        _, new_ids, removed_ids = self.catalog.put_item(state, modality, duration, meta, rows)
        for space, store in self.stores.items():
            if removed_ids:
                store.remove(removed_ids)
            ids = [i for i, s in zip(new_ids, segments) if space in s.vectors]
            if ids:
                store.add(np.asarray(ids, dtype=np.int64),  # fresh catalog ids
                          np.stack([s.vectors[space] for s in segments if space in s.vectors]), new=True)
        if was_known:
            report.updated += 1
            self._replaced.append(state.path)
        else:
            report.added += 1

    def _add_learned(self, segments) -> None:
        """New image/shot segments and sound windows get the attached space's vector too, in the same
        transaction (each from the head that reads its stored vectors)."""
        attached = self.attached
        if attached is None or attached.name not in self.stores:
            return
        for position, vector in attached.embed_segments(segments).items():
            segments[position].vectors[attached.name] = vector

    def _fail(self, report: IndexReport, state, modality: str | None, reason: str) -> None:
        self.catalog.record_failure(state, modality, reason)
        report.failed.append((state.path, reason))


def read_ahead(todo) -> Iterator[tuple]:
    """Decode files in a background thread while the encoders work on earlier ones: yields
    (state, modality, payload or None, seconds spent reading, reason or None), in order."""
    from .readers import read_for_index

    def load(entry):
        state, modality = entry
        began = time.perf_counter()
        try:
            payload = read_for_index(state.path)
            return state, modality, payload, time.perf_counter() - began, None
        except (UnsupportedFileError, ReadError) as error:
            return state, modality, None, time.perf_counter() - began, error.reason
        except Exception as error:  # noqa: BLE001 - a reader bug must not stop the batch
            return state, modality, None, time.perf_counter() - began, f"unexpected {type(error).__name__}: {error}"

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sensorium-read") as pool:
        window = []
        for entry in todo:
            window.append(pool.submit(load, entry))
            if len(window) >= READ_AHEAD:
                yield window.pop(0).result()
        for future in window:
            yield future.result()


def _time(report: IndexReport, modality: str, began: float, count: int) -> None:
    report.encode_seconds[modality] = report.encode_seconds.get(modality, 0.0) + time.perf_counter() - began
    report.encoded_items[modality] = report.encoded_items.get(modality, 0) + count


def _reason(error: Exception) -> str:
    """Our own errors already read as a sentence; anything else gets its type named."""
    if isinstance(error, SensoriumError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _duration(payload) -> float | None:
    return float(payload.duration) if hasattr(payload, "duration") else None


def _meta(payload) -> dict:
    meta: dict = {}
    if getattr(payload, "modality", None) == TEXT:
        meta["encoding"] = payload.encoding
        meta["chars"] = len(payload.text)
    if getattr(payload, "modality", None) == VIDEO:
        meta["frames"] = len(payload.frames)
        meta["has_audio"] = payload.audio is not None
    return meta
