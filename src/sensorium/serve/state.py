"""What every request handler needs: the collection view, its roots, token, jobs and metrics.

Handlers import this module, never the app that assembles them, so the HTTP layer's parts form
no circle. Reads go through the catalog's own read-only handle (`Catalog(readonly=True)`): the
service writes only through index jobs, which open a writer of their own.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..collection import CATALOG_FILE, Collection
from ..experts import SPEECH_IDLE_SECONDS
from ..index.catalog import Catalog
from .jobs import JobManager
from .media import THUMB_DIR, ThumbnailCache
from .metrics import Metrics
from .redact import PathRedactor
from .security import TOKEN_FILE, Roots, load_or_create_token

log = logging.getLogger("sensorium.serve")


def load_calibrations(paths: list[Path]) -> dict:
    """`sensorium calibrate` files by their label set; a bad file or two for one label set is a
    ConfigError at start-up, not a surprise in a request."""
    from ..errors import ConfigError
    from ..trust.profile import CalibrationProfile

    found: dict = {}
    for path in paths:
        profile = CalibrationProfile.load(path)
        key = frozenset(profile.labels)
        if key in found:
            raise ConfigError(f"{path}: a second calibration for the labels {', '.join(profile.labels)}")
        found[key] = profile
    return found
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
MAX_BODY_BYTES = 64 * 1024  # JSON bodies and forms without files


class ServeState:
    """What every request handler needs: the collection, its roots, token, jobs and metrics."""

    def __init__(self, collection_dir: Path, roots: list[Path], token_path: Path | None,
                 thumbnail_bytes: int = 256 * 1024**2, max_upload_bytes: int = MAX_UPLOAD_BYTES,
                 calibrations: list[Path] | None = None, speech_idle_seconds: float | None = SPEECH_IDLE_SECONDS):
        self.collection_dir = Path(collection_dir).expanduser().resolve()
        self.max_upload_bytes = max_upload_bytes
        self.thumbnails = ThumbnailCache(self.collection_dir / THUMB_DIR, thumbnail_bytes)
        self.roots = Roots(roots)
        first = Collection(self.collection_dir)
        first.catalog  # creates and migrates the catalog (and follows roots moved with it), so the read-only
        for notice in first.root_notices():  # connection can open it; the operator hears of missing roots
            log.warning("%s", notice)
        self.experts = first.experts
        self.experts.whisper.idle_seconds = speech_idle_seconds  # freed unused: its threads slow drawing
        self._view = first
        self._view_lock = threading.Lock()
        self.token = load_or_create_token(token_path or self.collection_dir / TOKEN_FILE)
        self.redact = PathRedactor(self.collection_dir, self.roots.folders)  # library messages, shown to clients
        self.jobs = JobManager(self._open_writer, on_finished=self._after_job,
                               display=lambda p: self.roots.relative(p) or Path(p).name, redact=self.redact)
        self.metrics = Metrics(self.index_size)
        self.catalog = Catalog(self.collection_dir / CATALOG_FILE, readonly=True)  # what handlers read
        self.calibrations = load_calibrations(calibrations or [])

    def calibration_for(self, labels: list[str]):
        """The calibration profile fitted for exactly this label set (any order), or None."""
        return self.calibrations.get(frozenset(labels))

    def view(self) -> Collection:
        """The collection searches use now (a consistent snapshot of the ANN indexes)."""
        return self._view

    def _after_job(self) -> None:
        self.reopen_view()
        self.thumbnails.prune()  # files the job found changed or deleted leave thumbnails behind

    def reopen_view(self) -> None:
        fresh = Collection(self.collection_dir)
        fresh.experts = self.experts
        for space in fresh.spaces():  # load the ANN indexes now, not in the next search
            fresh.store(space)
        with self._view_lock:
            self._view = fresh  # the old view is dropped when the last search using it ends

    def forget(self, path: str) -> dict:
        """Forget one file through a writer of our own (`Collection.forget`), then search the new state.
        Raises `CollectionLockedError` while an index job (or another process) writes."""
        writer = self._open_writer()
        try:
            result = writer.forget([path])
        finally:
            writer.close()
        self.thumbnails.recount()
        self.reopen_view()
        return result

    def _open_writer(self) -> Collection:
        writer = Collection(self.collection_dir)
        writer.experts = self.experts
        return writer

    def index_size(self) -> tuple[dict[str, int], int]:
        return self.catalog.counts(), self.catalog.segment_count()
