"""The catalog's schema versions: each entry moves a catalog from version i to i + 1.

SQL scripts run statement by statement in one transaction (split on ";", so a script never holds a
literal semicolon: it spells char(59)); a function rewrites data SQL cannot derive, such as the
roots of version 3. `Catalog` runs the ones a catalog has not had yet when it opens it for writing.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from sensorium.index.roots import Root, RootMap, derive_roots, relative_to


def _migrate_to_roots(db: sqlite3.Connection, collection_dir: Path) -> None:
    """3: paths relative to named roots. Roots are derived from the stored absolute paths (`derive_roots`)
    and every item and failure is rewritten as `NAME/relative`; nothing else changes."""
    db.execute("CREATE TABLE roots (name TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE, relative TEXT, "
               "set_at REAL NOT NULL)")
    rows = db.execute("SELECT 'items', id, path FROM items UNION ALL SELECT 'failures', rowid, path FROM failures").fetchall()
    roots = RootMap()
    for folder in derive_roots(path for *_, path in rows):
        root = Root(roots.new_name(folder), folder, relative_to(folder, collection_dir))
        db.execute("INSERT INTO roots (name, path, relative, set_at) VALUES (?, ?, ?, ?)",
                   (root.name, root.path, root.relative, time.time()))
        roots = RootMap([*roots.roots, root])
    for table, key, path in rows:
        stored = roots.stored(path)
        if stored is not None:
            db.execute(f"UPDATE {table} SET path = ? WHERE {'id' if table == 'items' else 'rowid'} = ?", (stored, key))


# Each entry moves the schema from version i to i+1: SQL statements, or a function of (connection,
# collection folder) where data must be rewritten. Never edit a released entry: append a new one.
Migration = str | Callable[[sqlite3.Connection, Path], None]
MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT,
        duration REAL,
        meta TEXT NOT NULL DEFAULT '{}',
        indexed_at REAL NOT NULL
    );
    CREATE INDEX items_kind ON items(kind);
    CREATE TABLE segments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        start REAL,
        "end" REAL,
        source TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        labels TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX segments_item ON segments(item_id);
    CREATE TABLE vectors (
        segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        space TEXT NOT NULL,
        dim INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (space, segment_id)
    );
    CREATE INDEX vectors_segment ON vectors(segment_id);
    CREATE VIRTUAL TABLE segment_text USING fts5(
        text, tokenize = 'porter unicode61 remove_diacritics 2'
    );
    CREATE TABLE failures (
        path TEXT PRIMARY KEY,
        kind TEXT,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT,
        reason TEXT NOT NULL,
        failed_at REAL NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: word timings of spoken segments (a hit spans the words it matched, not the whole sentence), and
    # the text read in a picture in a column of its own instead of appended to its labels after "; text: "
    # (char(59) is ";": statements are split on semicolons); and "kind" becomes "modality", the word the
    # code uses everywhere
    """
    ALTER TABLE items RENAME COLUMN kind TO modality;
    DROP INDEX items_kind;
    CREATE INDEX items_modality ON items(modality);
    ALTER TABLE failures RENAME COLUMN kind TO modality;
    ALTER TABLE segments ADD COLUMN words TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE segments ADD COLUMN ocr TEXT NOT NULL DEFAULT '';
    UPDATE segments SET ocr = trim(substr(text, instr(text, char(59) || ' text: ') + 8)),
                        text = substr(text, 1, instr(text, char(59) || ' text: ') - 1)
        WHERE source IN ('image', 'frame') AND instr(text, char(59) || ' text: ') > 0;
    """,
    _migrate_to_roots,
]
SCHEMA_VERSION = len(MIGRATIONS)
