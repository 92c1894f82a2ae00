"""Named roots: the catalog stores each file relative to the folder it was indexed from.

A catalog row holds `NAME/relative/path`, where NAME is a *root*: a folder the user indexed
(`sensorium index ~/Photos` names its root `Photos`). The absolute path is the root's current
folder joined with the relative part, so moving a media folder (a new disk, a renamed home) changes
one row of the `roots` table and nothing is re-embedded: `sensorium roots set Photos /mnt/disk/Photos`,
or automatically when `index` is pointed at the new place or the collection moved together with it
(see `sensorium.index.relocate`).

The one invariant everything relies on: a file is stored under the *longest* root that contains
it. Roots may nest only the way indexing makes them (a parent indexed after a child); the catalog
refuses any change that would make a stored path's root ambiguous.
"""
from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

FILESYSTEM = "filesystem"  # the name of a root at "/"
_NAME = re.compile(r"^[^/\x00]{1,255}$")


@dataclass(frozen=True)
class Root:
    """A named folder files are stored relative to. `relative` is its path relative to the collection
    folder when it was last set: followed when the collection and its media move together."""

    name: str
    path: str
    relative: str | None = None

    @property
    def prefix(self) -> str:
        """The root's path with one trailing slash: what every file under it starts with."""
        return self.path if self.path.endswith("/") else self.path + "/"

    def contains(self, path: str) -> bool:
        return path == self.path or path.startswith(self.prefix)


def normal_folder(path: str | os.PathLike) -> str:
    """An absolute, normalised folder path (no trailing slash except "/"), as roots are stored."""
    text = os.fspath(path)
    if not posixpath.isabs(text):
        raise ValueError(f"{text}: a root must be an absolute path")
    return posixpath.normpath("/" + text.lstrip("/"))  # normpath keeps a leading "//"


def check_name(name: str) -> str:
    """A root name is stored as the first component of every path under it: no slash, not empty."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ValueError(f"root name {name!r}: use 1-255 characters without '/'")
    return name


def relative_to(folder: str, collection_dir: Path) -> str | None:
    """A root's path relative to the collection folder (None across drives or when it cannot be said):
    followed when the collection and its media move together."""
    try:
        return os.path.relpath(folder, collection_dir)
    except ValueError:
        return None


def stored_prefix(name: str) -> str:
    return f"{name}/"


def prefix_range(prefix: str) -> tuple[str, str]:
    """[low, high) bounds of every string starting with `prefix` that ends in "/", for an index range scan."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


class RootMap:
    """The roots of one catalog, converting between absolute paths and stored `NAME/rel` paths."""

    def __init__(self, roots: Iterable[Root] = ()):
        self.roots = sorted(roots, key=lambda r: (-len(r.path), r.name))  # longest first: the owner is found first
        self.by_name = {root.name: root for root in self.roots}

    def __iter__(self):
        return iter(sorted(self.roots, key=lambda r: r.name))

    def __len__(self) -> int:
        return len(self.roots)

    def owner(self, path: str) -> Root | None:
        """The longest root containing the absolute `path`, or None."""
        for root in self.roots:
            if root.contains(path):
                return root
        return None

    def stored(self, path: str) -> str | None:
        """`path` as the catalog stores it, or None when no root contains it."""
        root = self.owner(path)
        if root is None:
            return None
        return stored_prefix(root.name) + path[len(root.prefix):] if path != root.path else stored_prefix(root.name)

    def absolute(self, stored: str) -> str:
        """The absolute path of a stored one, under its root's current folder."""
        name, _, relative = stored.partition("/")
        root = self.by_name.get(name)
        if root is None:  # not written by this code; shown as it is rather than hidden
            return stored
        return root.prefix + relative if relative else root.path

    def new_name(self, folder: str) -> str:
        """A name for a new root at `folder`: its folder name, numbered when already taken."""
        base = posixpath.basename(folder.rstrip("/")) or FILESYSTEM
        name, number = base, 2
        while name in self.by_name:
            name, number = f"{base}-{number}", number + 1
        return name

    def plan_move(self, root: Root, folder: str, collection_dir: Path, has_files: Callable[[Root], bool]) -> list[Root]:
        """`root` and the roots nested in it as they will be once `root` is at `folder`. Refused with a
        ConfigError when a stored file's root would become ambiguous: `folder` holding another root,
        or lying in another root that `has_files` in it."""
        from ..errors import ConfigError

        moving = [root, *self.under(root.path)]
        names = {m.name for m in moving}
        for other in self.roots:
            if other.name in names:
                continue
            if folder == other.path or other.path.startswith(folder.rstrip("/") + "/"):
                raise ConfigError(f"{folder} holds root {other.name!r} ({other.path}): roots cannot overlap")
            if other.contains(folder) and has_files(other):
                raise ConfigError(f"root {other.name!r} already has files in {folder}: roots cannot overlap")
        places = [folder if m.path == root.path else normal_folder(folder + "/" + m.path[len(root.path):]) for m in moving]
        return [Root(m.name, place, relative_to(place, collection_dir)) for m, place in zip(moving, places)]

    def under(self, folder: str) -> list[Root]:
        """Roots strictly inside `folder`."""
        prefix = folder if folder.endswith("/") else folder + "/"
        return [root for root in self.roots if root.path.startswith(prefix)]


def derive_roots(paths: Iterable[str]) -> list[str]:
    """Folders to use as roots for catalogs written before roots existed (absolute paths only).

    One root at the deepest folder holding every file when that is not "/" (the usual case: one
    indexed folder per collection); otherwise one per top-two-level group ("/home/ann", "/mnt/disk"),
    each at the deepest folder its files share. `sensorium roots set` can move each afterwards."""
    folders = sorted({posixpath.dirname(p) for p in paths if posixpath.isabs(p)})
    if not folders:
        return []
    common = posixpath.commonpath(folders)
    if common != "/":
        return [common]
    groups: dict[str, list[str]] = {}
    for folder in folders:
        parts = folder.strip("/").split("/")
        groups.setdefault("/".join(parts[:2]), []).append(folder)
    return sorted({posixpath.commonpath(members) for members in groups.values()})
