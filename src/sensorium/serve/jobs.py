"""Indexing jobs: one at a time per collection, in a background thread, observable and cancellable.

Why one at a time: the collection has a single writer (its `WriterLock`); a second request gets a
clear 409 instead of queueing silently. Why a separate `Collection` object for the job: searches
keep their own catalog connection and ANN indexes, so they never wait on the writer (SQLite WAL);
the experts (the slow part) are shared. When a job ends, `on_finished` lets the app reopen the
search side so new items become findable.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SensoriumError

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


class JobConflict(Exception):
    """Another indexing job is still running."""

    def __init__(self, running: "Job"):
        self.running = running
        super().__init__(f"job {running.id} is still indexing {running.folder}")


@dataclass
class Job:
    id: str
    folder: str  # relative to its root, as shown to clients
    state: str = RUNNING
    done: int = 0
    total: int = 0
    current: str = ""
    report: dict | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    version: int = 0  # bumped on every change, so event streams send only news
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {"id": self.id, "folder": self.folder, "state": self.state, "done": self.done,
                "total": self.total, "current": self.current, "report": self.report, "error": self.error,
                "started": self.started, "finished": self.finished}


class JobManager:
    """Starts, tracks and cancels indexing jobs of one collection."""

    def __init__(self, open_writer: Callable[[], object], on_finished: Callable[[], None] | None = None,
                 display: Callable[[str], str] | None = None, redact: Callable[[str], str] | None = None):
        self._open_writer = open_writer
        self._on_finished = on_finished
        self._display = display or (lambda path: path)
        self._redact = redact or (lambda text: text)  # a failed job's message names no server path
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.closing = threading.Event()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def running(self) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.state == RUNNING), None)

    def start(self, folder: Path, shown_as: str) -> Job:
        with self._lock:
            if self.closing.is_set():
                raise SensoriumError("the server is shutting down")
            busy = next((j for j in self._jobs.values() if j.state == RUNNING), None)
            if busy is not None:
                raise JobConflict(busy)
            job = Job(id=uuid.uuid4().hex[:12], folder=shown_as)
            self._jobs[job.id] = job
            job.thread = threading.Thread(target=self._run, args=(job, folder), name=f"index-{job.id}",
                                          daemon=True)
            job.thread.start()
        return job

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None:
            job.stop.set()
        return job

    def wait_for_change(self, job: Job, seen: int, timeout: float) -> int:
        """Block until `job.version` differs from `seen` (or timeout); returns the current version."""
        with self._changed:
            self._changed.wait_for(lambda: job.version != seen, timeout=timeout)
            return job.version

    def request_stop(self) -> None:
        """Refuse new jobs and ask running ones to stop after their current file (no waiting)."""
        self.closing.set()
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        """`request_stop`, then wait for the jobs to end (graceful SIGTERM)."""
        self.request_stop()
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.thread is not None:
                job.thread.join(timeout)

    def _update(self, job: Job, **changes) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(job, name, value)
            job.version += 1
            self._changed.notify_all()

    def _run(self, job: Job, folder: Path) -> None:
        def progress(done: int, total: int, path: str) -> None:
            self._update(job, done=done, total=total, current=self._display(path) if path else "")

        def should_stop() -> bool:
            return job.stop.is_set() or self.closing.is_set()

        writer = None
        outcome: dict = {"state": FAILED, "error": "unexpected error"}
        try:
            writer = self._open_writer()
            report = writer.index(folder, progress=progress, should_stop=should_stop)
            details = report.as_dict()
            details["folder"] = job.folder
            details["failed"] = [{"path": self._display(f["path"]), "reason": self._redact(f["reason"])}
                                 for f in details["failed"]]
            details["notices"] = [self._redact(notice) for notice in details["notices"]]  # a moved root's folders
            outcome = {"report": details, "state": CANCELLED if report.cancelled else DONE, "error": None}
        except SensoriumError as error:
            outcome = {"state": FAILED, "error": self._redact(str(error))}
        except Exception as error:  # noqa: BLE001 - reported to the client, never re-raised in a thread
            outcome = {"state": FAILED, "error": f"unexpected {type(error).__name__}"}
        finally:
            if writer is not None:
                writer.close()
            if self._on_finished is not None:  # before the final state: "done" means searchable
                try:
                    self._on_finished()
                except Exception:  # noqa: BLE001 - searching the old view still works
                    pass
            self._update(job, finished=time.time(), **outcome)
