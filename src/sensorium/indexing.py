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
- with a pool (`sensorium.workers`: local processes or Ray actors), the reading and embedding move
  to the workers (`embed_entries`) and only storing stays here: one writer, the same transactions;
  a worker that dies loses nothing stored, and the files it held are redone, alone, until the one
  that kills a worker twice on its own is recorded as failed;
- a deleted or changed file leaves nothing of its old version behind: its thumbnails are forgotten
  (`forget_derived`), the vector stores overwrite removed vectors on save, and the catalog is
  scrubbed (`Catalog.scrub`) at the end of a run that removed or replaced anything.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from collections import deque
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

    def run(self, folder: Path, progress: Progress | None = None, should_stop: ShouldStop | None = None,
            pool=None, make_pool: Callable[[], object] | None = None) -> IndexReport:
        """Embed new and changed files under `folder`, skip unchanged ones, drop deleted ones;
        with `pool` (see `sensorium.workers`) the files are read and embedded by its workers;
        `make_pool` makes one only if there is something to embed (workers take seconds to start)."""
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

        if pool is None and make_pool is not None and todo:
            pool = make_pool()
        if pool is None:
            self._embed_all(todo, report, progress, should_stop)
        else:
            self._embed_with(pool, todo, report, progress, should_stop)
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
            outcomes = embed_image_batch(embedder, [payload for _, _, payload in pending_images])
            _time(report, IMAGE, began, len(pending_images))
            for (state, modality, payload), (segments, error) in zip(pending_images, outcomes):
                if error is not None:
                    self._fail(report, state, modality, error)
                else:
                    self._store(report, state, modality, None, payload_meta(payload), segments)
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
                segments, failure = embed_payload(embedder, payload, modality)
                if failure is not None:
                    self._fail(report, state, modality, failure)
                else:
                    _time(report, modality, began, 1)
                    self._store(report, state, modality, payload_duration(payload), payload_meta(payload), segments)
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

    def _embed_with(self, pool, todo, report: IndexReport, progress: Progress | None,
                    should_stop: ShouldStop | None) -> None:
        """The same work as `_embed_all`, read and embedded by `pool`'s workers; stored here."""
        states = {state.path: state for state, _ in todo}
        total, done, last_save = len(todo), 0, time.perf_counter()

        def keep(work: FileWork) -> None:
            nonlocal done
            self._keep(report, states[work.path], work)
            done += 1
            if progress:
                progress(done, total, work.path)

        def tick() -> None:
            nonlocal last_save
            if time.perf_counter() - last_save > SAVE_EVERY_SECONDS:
                self._save()
                last_save = time.perf_counter()

        report.cancelled = run_on_pool(pool, [(state.path, modality) for state, modality in todo], keep,
                                       should_stop, tick)
        if progress and not report.cancelled:
            progress(total, total, "")

    def _keep(self, report: IndexReport, state, work: "FileWork") -> None:
        report.read_seconds += work.read_seconds
        if work.error is not None:
            self._fail(report, state, work.modality, work.error)
            return
        report.encode_seconds[work.modality] = report.encode_seconds.get(work.modality, 0.0) + work.encode_seconds
        report.encoded_items[work.modality] = report.encoded_items.get(work.modality, 0) + 1
        self._store(report, state, work.modality, work.duration, work.meta, work.segments)

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

    def load(entry):
        state, modality = entry
        payload, seconds, error = read_file(state.path)
        return state, modality, payload, seconds, error

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sensorium-read") as pool:
        window = []
        for entry in todo:
            window.append(pool.submit(load, entry))
            if len(window) >= READ_AHEAD:
                yield window.pop(0).result()
        for future in window:
            yield future.result()


@dataclass
class FileWork:
    """What reading and embedding one file gave, here or in a worker: its segments, or the reason
    it failed; with what the catalog stores beside them."""

    path: str
    modality: str
    segments: list | None = None
    error: str | None = None
    duration: float | None = None
    meta: dict = field(default_factory=dict)
    read_seconds: float = 0.0
    encode_seconds: float = 0.0


@dataclass
class _Task:
    """One unit of work for a pool: a batch of photos, or one other file."""

    entries: list[tuple[str, str]]
    alone: bool = False  # run with nothing else in flight (after a worker died)
    deaths_alone: int = 0


def batch_entries(entries: list[tuple[str, str]]) -> list[_Task]:
    """Photos in batches of IMAGE_BATCH (the image expert runs once per batch), other files one each."""
    tasks, photos = [], []
    for path, modality in entries:
        if modality == IMAGE:
            photos.append((path, modality))
            if len(photos) == IMAGE_BATCH:
                tasks.append(_Task(photos))
                photos = []
        else:
            tasks.append(_Task([(path, modality)]))
    if photos:
        tasks.append(_Task(photos))
    return tasks


def run_on_pool(pool, entries: list[tuple[str, str]], keep: Callable[[FileWork], None],
                should_stop: ShouldStop | None = None, tick: Callable[[], None] | None = None) -> bool:
    """Read and embed (path, modality) entries on `pool`'s workers (see `sensorium.workers`),
    calling `keep(work)` here for every file as it finishes, failures included. Tasks that were
    running when a worker died run again alone; a batch that kills a worker on its own is split
    into single files, and a file that does it twice comes back failed. Returns True if
    `should_stop` ended the run early (the files not kept are simply not done)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from .heap import release_free_memory

    queue = deque(batch_entries(entries))
    suspects: deque[_Task] = deque()  # running when a worker died: each is run again alone
    in_flight: dict = {}

    def submitted(task: _Task, source: deque) -> bool:
        """Hand `task` to the pool; a pool found broken here (a worker died since the last look)
        is revived and the task goes back where it came from."""
        try:
            in_flight[pool.submit(task.entries)] = task
            return True
        except pool.died:
            source.appendleft(task)
            pool.revive()
            return False

    while queue or suspects or in_flight:
        if should_stop is not None and should_stop():
            return True
        if suspects:
            if not in_flight:
                task = suspects.popleft()
                task.alone = True
                submitted(task, suspects)
        else:
            while queue and len(in_flight) < pool.width:
                if not submitted(queue.popleft(), queue):
                    break
        if not in_flight:
            continue
        finished, _ = wait(list(in_flight), timeout=0.5, return_when=FIRST_COMPLETED)
        died = False
        for future in finished:
            task = in_flight.pop(future)
            error = future.exception()
            if error is not None and isinstance(error, pool.died):
                died = True
                for work in _after_death(task, suspects):
                    keep(work)
                continue
            works = future.result() if error is None else [
                FileWork(path, modality, error=f"worker failed: {_reason(error)}") for path, modality in task.entries]
            for work in works:
                keep(work)
            release_free_memory()
        if died:
            pool.revive()
        if tick is not None:
            tick()
    return False


def _after_death(task: _Task, suspects: deque) -> list[FileWork]:
    """Queue a dead worker's task to run again alone (split, if it was alone and held several
    files); a single file that killed its worker alone twice comes back as failed."""
    if not task.alone:
        suspects.append(task)
        return []
    if len(task.entries) > 1:
        suspects.extendleft(reversed([_Task([entry]) for entry in task.entries]))
        return []
    task.deaths_alone += 1
    if task.deaths_alone < 2:
        suspects.appendleft(task)
        return []
    path, modality = task.entries[0]
    return [FileWork(path, modality, error="the worker process died while embedding this file (twice)")]


def read_file(path: str) -> tuple[object | None, float, str | None]:
    """(payload or None, seconds spent, reason it could not be read or None)."""
    from .readers import read_for_index

    began = time.perf_counter()
    try:
        return read_for_index(path), time.perf_counter() - began, None
    except (UnsupportedFileError, ReadError) as error:
        return None, time.perf_counter() - began, error.reason
    except Exception as error:  # noqa: BLE001 - a reader bug must not stop the batch
        return None, time.perf_counter() - began, f"unexpected {type(error).__name__}: {error}"


def embed_payload(embedder, payload, modality: str) -> tuple[list | None, str | None]:
    """(segments, None) or (None, the reason) for one file that is not a photo."""
    try:
        return embedder.embed(payload), None
    except ReadError as error:  # a recording read in windows can fail (truncated, silent) late
        return None, error.reason
    except Exception as error:  # noqa: BLE001 - one bad file never stops the batch
        return None, f"{modality} encoder failed: {_reason(error)}"


def embed_image_batch(embedder, payloads: list) -> list[tuple[list | None, str | None]]:
    """(segments, None) or (None, reason) per photo: the batch at once, and if it fails, one by one,
    so that one bad photo never fails its neighbours."""
    try:
        return [(segments, None) for segments in embedder.embed_images(payloads)]
    except Exception:  # noqa: BLE001 - retried one by one below
        pass
    outcomes = []
    for payload in payloads:
        try:
            outcomes.append((embedder.embed_images([payload])[0], None))
        except Exception as error:  # noqa: BLE001 - recorded per file
            outcomes.append((None, f"image encoder failed: {_reason(error)}"))
    return outcomes


def embed_entries(embedder, entries: list[tuple[str, str]]) -> list[FileWork]:
    """Read and embed (path, modality) entries, photos together: what a worker does with a task."""
    from .heap import release_free_memory

    works, photos = [], []
    for path, modality in entries:
        payload, seconds, error = read_file(path)
        work = FileWork(path, modality, error=error, read_seconds=seconds)
        works.append(work)
        if error is not None:
            continue
        if modality == IMAGE:
            work.meta = payload_meta(payload)
            photos.append((work, payload))
            continue
        began = time.perf_counter()
        work.segments, work.error = embed_payload(embedder, payload, modality)
        work.encode_seconds = time.perf_counter() - began
        # after embedding: a recording read in windows knows its duration once it has been read
        work.duration, work.meta = payload_duration(payload), payload_meta(payload)
        del payload
        release_free_memory()
    if photos:
        began = time.perf_counter()
        outcomes = embed_image_batch(embedder, [payload for _, payload in photos])
        share = (time.perf_counter() - began) / len(photos)
        for (work, _), (segments, error) in zip(photos, outcomes):
            work.segments, work.error, work.encode_seconds = segments, error, share
    return works


def _time(report: IndexReport, modality: str, began: float, count: int) -> None:
    report.encode_seconds[modality] = report.encode_seconds.get(modality, 0.0) + time.perf_counter() - began
    report.encoded_items[modality] = report.encoded_items.get(modality, 0) + count


def _reason(error: Exception) -> str:
    """Our own errors already read as a sentence; anything else gets its type named."""
    if isinstance(error, SensoriumError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def payload_duration(payload) -> float | None:
    return float(payload.duration) if hasattr(payload, "duration") else None


def payload_meta(payload) -> dict:
    """What the catalog keeps about a payload beside its segments."""
    meta: dict = {}
    if getattr(payload, "modality", None) == IMAGE:
        meta["width"], meta["height"] = payload.size[0], payload.size[1]
    if getattr(payload, "modality", None) == TEXT:
        meta["encoding"] = payload.encoding
        meta["chars"] = len(payload.text)
    if getattr(payload, "modality", None) == VIDEO:
        meta["frames"] = len(payload.frames)
        meta["has_audio"] = payload.audio is not None
    return meta
