"""Find the files of a folder that Sensorium can read, cheaply and in a stable order.

The scan only stats files; hashing happens later and only for new or changed files (see the
change-detection rule in `catalog.py`). Hidden files and folders, and any collection folder (one
holding a `writer.lock`), are skipped so a collection kept inside the scanned folder never indexes
itself.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sensorium.errors import ReadError
from sensorium.index.lock import LOCK_NAME
from sensorium.modality import modality_of

HASH_CHUNK = 1 << 20
SAMPLED_ABOVE = 256 << 20
"""Files larger than this are hashed from their head, tail and size only (a 4 GB video would
otherwise take seconds per rescan of a changed mtime)."""
SAMPLE_BYTES = 16 << 20


@dataclass(frozen=True)
class ScannedFile:
    path: str       # absolute path
    modality: str
    size: int
    mtime_ns: int


def scan(folder: str | Path, follow_symlinks: bool = False, exclude: Iterable[str | Path] = (),
         on_error: Callable[[str, str], None] | None = None) -> Iterator[ScannedFile]:
    """Every readable file under `folder` (or `folder` itself if it is a file), sorted by path.

    Symlinks are skipped unless `follow_symlinks` (then loops are cut). `exclude` names folders to
    leave out. Unreadable folders are reported to `on_error(path, reason)` and skipped.
    """
    root = Path(os.path.abspath(folder))
    if not root.exists():
        raise ReadError(root, "no such file or folder")
    if root.is_file():
        modality = modality_of(root)
        if modality is not None:
            st = root.stat()
            yield ScannedFile(str(root), modality, st.st_size, st.st_mtime_ns)
        return
    excluded = {os.path.abspath(p) for p in exclude}
    seen_dirs: set[tuple[int, int]] = set()
    yield from _walk(str(root), follow_symlinks, excluded, seen_dirs, on_error)


def _walk(folder: str, follow: bool, excluded: set[str], seen: set[tuple[int, int]],
          on_error: Callable[[str, str], None] | None) -> Iterator[ScannedFile]:
    try:
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            return  # a symlink loop, or a folder reached twice
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if on_error is not None:
            on_error(folder, exc.strerror or str(exc))
        return
    if any(e.name == LOCK_NAME for e in entries) or folder in excluded:
        return  # a collection folder
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_symlink() and not follow:
                continue
            if entry.is_dir(follow_symlinks=follow):
                yield from _walk(entry.path, follow, excluded, seen, on_error)
                continue
            modality = modality_of(entry.name)
            if modality is None or not entry.is_file(follow_symlinks=follow):
                continue
            st = entry.stat(follow_symlinks=follow)
        except OSError as exc:  # vanished, broken symlink, permission denied
            if on_error is not None:
                on_error(entry.path, exc.strerror or str(exc))
            continue
        yield ScannedFile(entry.path, modality, st.st_size, st.st_mtime_ns)


def content_hash(path: str | Path) -> str:
    """blake2b of the file's bytes (hex). Files over 256 MB: of size + first and last 16 MB,
    marked with a 'sampled:' prefix so the two kinds never compare equal.

    Raises OSError (vanished, permission denied) unchanged: the indexer records it as the file's
    failure and moves on."""
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= SAMPLED_ABOVE:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
            return digest.hexdigest()
        digest.update(size.to_bytes(8, "little"))
        digest.update(f.read(SAMPLE_BYTES))
        f.seek(size - SAMPLE_BYTES)
        digest.update(f.read(SAMPLE_BYTES))
        return "sampled:" + digest.hexdigest()
