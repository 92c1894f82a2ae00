"""Re-attaching a moved root without re-embedding: find where its files went, and say so.

A root whose folder is gone (or holds none of its files: an unplugged disk's mount point) is *missing*. Two places are checked for its files, and the root is
moved there (`Catalog.set_root`, one row) only when a sample of its stored files is found there with
the sizes recorded (`evidence`):
- the folder `sensorium index` is pointed at, when no root holds it yet (`claim_moved`): the user
  moved ~/Photos to /mnt/disk/Photos and indexes the new place;
- the root's old place relative to the collection folder (`reattach_moved`): the collection and its
  media were copied or moved together, e.g. a project folder holding both.
Everything else is left to `sensorium roots set NAME FOLDER`, and every missing root is named with
that advice (`missing_notices`). Nothing here deletes anything: a missing root's items stay stored.
"""
from __future__ import annotations

import math
import os
import posixpath
import random
from dataclasses import dataclass
from pathlib import Path

from .roots import Root

SAMPLE = 50  # stored files checked per candidate folder
AGREEMENT = 0.8  # the share of them that must be there, with their recorded size


@dataclass(frozen=True)
class Evidence:
    """How many of a root's sampled files a candidate folder holds with the same size."""

    sampled: int
    found: int

    @property
    def convincing(self) -> bool:
        return self.sampled > 0 and self.found >= max(1, math.ceil(AGREEMENT * self.sampled))


def sample_files(catalog, name: str, sample: int = SAMPLE, shuffled: bool = True) -> list[tuple[str, int]]:
    """(path relative to root `name`, size) of up to `sample` stored files of the root and of the roots
    nested in it (they move with it), at random unless `shuffled` is False."""
    roots = catalog.root_map()
    root = roots.by_name[name]
    rows = list(catalog.root_sample(name, sample, shuffled))
    for nested in roots.under(root.path):
        inside = nested.path[len(root.prefix):]
        rows += [(posixpath.join(inside, relative), size)
                 for relative, size in catalog.root_sample(nested.name, sample, shuffled)]
    return random.sample(rows, sample) if len(rows) > sample else rows


def evidence(catalog, name: str, folder: str | os.PathLike, sample: int = SAMPLE) -> Evidence:
    """Check up to `sample` of root `name`'s stored files under `folder` (size only: no file is read)."""
    rows = sample_files(catalog, name, sample)
    found = 0
    for relative, size in rows:
        try:
            found += os.stat(posixpath.join(os.fspath(folder), relative)).st_size == size
        except (OSError, ValueError):
            continue
    return Evidence(len(rows), found)


def is_missing(catalog, root: Root) -> bool:
    """The root's folder is gone, or none of a few of its files is there (an empty mount point of a
    disk not plugged in looks like the first, not like a folder whose files were all deleted)."""
    if not os.path.isdir(root.path):
        return True
    sample = sample_files(catalog, root.name, 5, shuffled=False)  # on every open: a few index rows, no scan
    return bool(sample) and not any(os.path.lexists(posixpath.join(root.path, relative)) for relative, _ in sample)


def missing_roots(catalog) -> list[Root]:
    """Missing roots, outermost first (moving one moves those nested in it)."""
    return sorted((root for root in catalog.roots() if is_missing(catalog, root)), key=lambda r: (len(r.path), r.name))


def moved_notice(name: str, old: str, new: str, proof: Evidence) -> str:
    return (f"root {name!r} moved from {old} to {new} ({proof.found} of {proof.sampled} sampled files found there): "
            "re-attached, nothing re-embedded")


def claim_moved(catalog, folder: str | os.PathLike) -> list[str]:
    """Before `folder` is indexed: when no root holds it and it holds a missing root's files, move that
    root here instead of indexing them again. Returns what was done, one sentence per root."""
    folder = os.fspath(folder)
    if catalog.root_map().owner(folder) is not None:
        return []
    for root in missing_roots(catalog):
        proof = evidence(catalog, root.name, folder)
        if proof.convincing:
            catalog.set_root(root.name, folder)
            return [moved_notice(root.name, root.path, folder, proof)]
    return []


def reattach_moved(catalog, collection_dir: str | os.PathLike) -> list[str]:
    """Move every missing root whose files are at its old place relative to the collection folder (the
    collection moved with its media). Returns what was done, one sentence per root moved."""
    notices: list[str] = []
    tried: set[str] = set()
    while True:  # moving a root moves the roots nested in it: look again after each move
        candidates = [root for root in missing_roots(catalog) if root.relative and root.name not in tried]
        if not candidates:
            return notices
        root = candidates[0]
        tried.add(root.name)
        place = posixpath.normpath(posixpath.join(Path(collection_dir).as_posix(), root.relative))
        if place == root.path or not os.path.isdir(place):
            continue
        proof = evidence(catalog, root.name, place)
        if proof.convincing:
            catalog.set_root(root.name, place)
            notices.append(moved_notice(root.name, root.path, place, proof))


def missing_notices(catalog) -> list[str]:
    """One sentence per missing root that still has items (those nested in it counted with it, as they
    move with it), with the command that re-attaches it."""
    missing = missing_roots(catalog)
    if not missing:
        return []
    counts = catalog.root_counts()  # a pass over every item: only when a root is missing
    roots = catalog.root_map()
    notices: list[str] = []
    named: list[Root] = []
    for root in missing:  # outermost first
        if any(outer.contains(root.path) for outer in named):
            continue
        items = sum(counts.get(r.name, (0, 0))[0] for r in [root, *roots.under(root.path)])
        if items:
            named.append(root)
            notices.append(f"root {root.name!r} is missing ({root.path}): its {items} items stay stored but their "
                           f"files cannot be opened; if it moved, run `sensorium roots set {root.name} NEW_FOLDER`")
    return notices
