"""The roots table of the catalog: the named folders stored paths are relative to.

A part of `Catalog` (which mixes this class in, so callers keep one object): listing roots with
their item counts, sampling a root's files for relocation, adding a root and pointing one at a new
folder. It relies on the catalog's connection, lock and transaction (`_db`, `_lock`, `_read`,
`_transaction`, `version`), and is never used alone.
"""
from __future__ import annotations

import os
import sqlite3
import time

from sensorium.errors import ConfigError
from sensorium.index.roots import Root, RootMap, check_name, normal_folder, prefix_range, relative_to, stored_prefix


class RootRows:
    """Catalog methods about roots (see the module docstring)."""

    def root_map(self) -> RootMap:
        """The roots as stored now, reloaded whenever the catalog changed (another process may move one)."""
        with self._lock:
            version = self.version()
            if self._root_cache is None or self._root_cache[0] != version:
                rows = self._db.execute("SELECT name, path, relative FROM roots").fetchall()
                self._root_cache = (version, RootMap(Root(*row) for row in rows))
            return self._root_cache[1]

    def roots(self) -> list[Root]:
        """Every root, by name."""
        return list(self.root_map())

    def root_counts(self) -> dict[str, tuple[int, int]]:
        """Root name -> (items stored under it, failures recorded under it)."""
        counts = {root.name: [0, 0] for root in self.root_map()}
        for column, table in ((0, "items"), (1, "failures")):
            for name, count in self._read(f"SELECT substr(path, 1, instr(path, '/') - 1) AS name, COUNT(*) "
                                          f"FROM {table} GROUP BY name"):
                if name in counts:
                    counts[name][column] = count
        return {name: (items, failures) for name, (items, failures) in counts.items()}

    def root_sample(self, name: str, limit: int = 50, shuffled: bool = True) -> list[tuple[str, int]]:
        """(path relative to the root, size) of up to `limit` items stored under root `name`, at random:
        the evidence `sensorium.index.relocate` checks a candidate folder against. Unshuffled, the first
        ones by path: a lookup of a few index rows instead of a pass over the whole root."""
        low, high = prefix_range(stored_prefix(name))
        order = "ORDER BY random() " if shuffled else ""
        rows = self._read(f"SELECT path, size FROM items WHERE path >= ? AND path < ? {order}LIMIT ?",
                          (low, high, int(limit)))
        return [(path[len(low):], size) for path, size in rows]

    def add_root(self, folder: str | os.PathLike, name: str | None = None) -> Root:
        """The root files under `folder` are stored relative to: the root already containing it, or a new
        one named `name` (default: the folder's own name, numbered if taken). Roots already inside
        `folder` keep their files (the longest root wins)."""
        folder = normal_folder(folder)
        if name is not None:
            check_name(name)
        with self._transaction() as db:
            return self._add_root(db, folder, name)

    def _add_root(self, db: sqlite3.Connection, folder: str, name: str | None) -> Root:
        roots = self.root_map()
        owner = roots.owner(folder)
        if owner is not None:
            if name is None or (owner.name == name and owner.path == folder):
                return owner
            raise ConfigError(f"{folder} is inside root {owner.name!r} ({owner.path}): its files are stored under "
                              "that root")
        if name is not None and name in roots.by_name:
            raise ConfigError(f"a root named {name!r} already exists ({roots.by_name[name].path})")
        root = Root(name or roots.new_name(folder), folder, relative_to(folder, self.db_path.resolve().parent))
        db.execute("INSERT INTO roots (name, path, relative, set_at) VALUES (?, ?, ?, ?)",
                   (root.name, root.path, root.relative, time.time()))
        return root

    def set_root(self, name: str, folder: str | os.PathLike) -> tuple[Root | None, list[Root]]:
        """Point root `name` at `folder` (creating it when there is none of that name), moving the roots
        nested in it along. Returns (the root as it was, or None when created; the roots as they are now
        that moved or were made). Nothing else changes: no file is read, nothing is re-embedded.

        Refused with a `ConfigError` when the result would make a stored file's root ambiguous: `folder`
        holding another root, or lying in another root that already has files there."""
        check_name(name)
        folder = normal_folder(folder)
        with self._transaction() as db:
            roots = self.root_map()
            root = roots.by_name.get(name)
            if root is None:
                return None, [self._add_root(db, folder, name)]
            if root.path == folder:
                return root, []
            moved = roots.plan_move(root, folder, self.db_path.resolve().parent,
                                    lambda other: self._has_files(db, roots, folder, other))
            for m in moved:  # two steps, so a root moving onto another's old place never collides
                db.execute("UPDATE roots SET path = ? WHERE name = ?", (f"\x00moving/{m.name}", m.name))
            for m in moved:
                db.execute("UPDATE roots SET path = ?, relative = ?, set_at = ? WHERE name = ?",
                           (m.path, m.relative, time.time(), m.name))
            return root, moved

    @staticmethod
    def _has_files(db: sqlite3.Connection, roots: RootMap, folder: str, root: Root) -> bool:
        stored = roots.stored(folder)
        if stored is None or roots.owner(folder) is not root:
            return False
        low, high = prefix_range(stored if stored.endswith("/") else stored + "/")
        return any(db.execute(f"SELECT 1 FROM {table} WHERE path >= ? AND path < ? LIMIT 1", (low, high)).fetchone()
                   for table in ("items", "failures"))
