"""Where a collection keeps thumbnails, and how the ones of a file are found again to forget them.

The service makes the thumbnails (`sensorium.serve.media.ThumbnailCache`); a collection must be able
to delete a file's thumbnails when the file is forgotten or deleted, without the service. So each
name starts with a tag of the source's path: `{tag(path)}-{hash(size, mtime, edge, time)}.jpg`.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

THUMB_DIR = "thumbnails"
_TAG = 16  # hex characters of each half of a name


def source_tag(path: str | os.PathLike) -> str:
    return hashlib.sha256(os.fsencode(os.fspath(path))).hexdigest()[:_TAG]


def thumbnail_name(path: str | os.PathLike, size: int, mtime_ns: int, edge: int, at: float | None) -> str:
    """The file name of one thumbnail: a changed file (size, mtime) or another moment gets a new one."""
    version = hashlib.sha256(f"{size}\0{mtime_ns}\0{edge}\0{at}".encode()).hexdigest()[:_TAG]
    return f"{source_tag(path)}-{version}.jpg"


def forget_thumbnails(collection_dir: Path, paths: Iterable[str]) -> int:
    """Delete every thumbnail of these source files (and any named before names carried a tag, whose
    source cannot be told); returns how many files were deleted."""
    folder = Path(collection_dir) / THUMB_DIR
    tags = {source_tag(path) for path in paths}
    if not tags or not folder.is_dir():
        return 0
    deleted = 0
    for entry in os.scandir(folder):
        tag, dash, _ = entry.name.partition("-")
        if entry.name.endswith(".jpg") and (tag in tags or not dash):
            try:
                os.unlink(entry.path)
                deleted += 1
            except FileNotFoundError:
                pass
    return deleted
