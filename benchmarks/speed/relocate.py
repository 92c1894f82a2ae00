"""Moving a media folder: re-attaching its root against embedding it all again.

    .venv/bin/python -m benchmarks.speed.relocate [--notes 300] [--photos 200] [--files 100000]

Part 1, real models: `--notes` text notes and `--photos` photos (COCO-mini crops when ../shared is
there, `benchmarks.common.photos`) are indexed, then the folder is (a) renamed (`mv`: sizes
and mtimes kept) and indexed at its new place, and (b) copied without its timestamps (`cp -r`) and
indexed there, which re-hashes every file but re-embeds none. Both are set against the first
indexing, which is what a move cost before paths were stored relative to roots.

Part 2, scale: `--files` tiny files on disk with synthetic catalog entries (no experts run): the
time of `roots set` (one row), of indexing the moved folder (a scan that finds every file
unchanged), of the same scan without a move, and of migrating a catalog of that many absolute
paths (schema 2) to roots.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

SUBJECTS = ["the glacier", "a market", "the engine", "our garden", "the concert", "a ferry", "the library",
            "a thunderstorm", "the bakery", "a mountain hut"]
EVENTS = ["we walked to", "someone repaired", "I photographed", "the children painted", "we argued about",
          "they cleaned", "I wrote a letter about", "we waited near"]


def write_notes(folder: Path, count: int) -> None:
    for number in range(count):
        sub = folder / f"{number // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        subject, event = SUBJECTS[number % len(SUBJECTS)], EVENTS[(number // len(SUBJECTS)) % len(EVENTS)]
        (sub / f"note-{number:05d}.md").write_text(f"Day {number}: {event} {subject}. Entry {number} of the diary.\n")


def timed(action):
    began = time.perf_counter()
    result = action()
    return result, time.perf_counter() - began


def part_one(work: Path, notes: int, photos: int) -> list[tuple[str, float, str]]:
    from benchmarks.common.photos import photo_folder
    from sensorium import Collection

    media = work / "home" / "notes"
    write_notes(media, notes)
    if photos:
        shutil.copytree(photo_folder(photos), media / "photos", ignore=shutil.ignore_patterns(".complete"))
    notes += photos
    rows = []
    with Collection(work / "collection") as collection:
        report, seconds = timed(lambda: collection.index(media))
        rows.append(("first indexing (what a move cost before)", seconds, f"{report.added} added"))
    moved = work / "disk" / "notes"
    moved.parent.mkdir()
    os.rename(media, moved)
    with Collection(work / "collection") as collection:
        report, seconds = timed(lambda: collection.index(moved))
        assert report.added == 0 and report.unchanged == notes, report.as_dict()
        hit = collection.search(text="Entry 7 of the diary", k=1)[0].path
        rows.append(("`mv`, then index the new place", seconds,
                     f"{report.unchanged} unchanged, 0 embedded; top hit {Path(hit).relative_to(moved)}"))
    copied = work / "copy" / "notes"
    shutil.copytree(moved, copied, copy_function=shutil.copy)  # new mtimes: every file is hashed again
    shutil.rmtree(moved)
    with Collection(work / "collection") as collection:
        report, seconds = timed(lambda: collection.index(copied))
        assert report.added == 0 and report.touched == notes, report.as_dict()
        rows.append(("`cp -r` (new mtimes), then index the copy", seconds, f"{report.touched} re-hashed, 0 embedded"))
    return rows


def part_two(work: Path, files: int) -> list[tuple[str, float, str]]:
    from benchmarks.common.synthetic import write_synthetic_collection
    from sensorium import Collection
    from sensorium.index.catalog import MIGRATIONS, Catalog, FileState

    media = work / "pile"
    entries = []
    for number in range(files):
        path = media / f"{number // 1000:03d}" / f"{number:06d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (1 + number % 97))
        stat = path.stat()
        entries.append((FileState(str(path), stat.st_size, stat.st_mtime_ns, f"{number:032x}"), "text"))
    with Collection(work / "big") as collection:
        collection.catalog.add_root(media)  # what `index` does first: files stored relative to the folder
    write_synthetic_collection(work / "big", entries, label="note")
    rows = []
    with Collection(work / "big") as collection:
        report, seconds = timed(lambda: collection.index(media))
        assert report.unchanged == files, report.as_dict()
        rows.append(("index, nothing moved (scan only)", seconds, f"{report.unchanged} unchanged"))
    moved = work / "moved-pile"
    os.rename(media, moved)
    with Collection(work / "big") as collection:
        report, seconds = timed(lambda: collection.index(moved))
        assert report.unchanged == files and len(report.notices) == 1, report.as_dict()
        rows.append(("`mv`, then index the new place", seconds, "re-attached, all unchanged"))
        _, seconds = timed(lambda: collection.set_root(collection.roots()[0]["name"], media.parent / "elsewhere"))
        rows.append(("`roots set` (Collection.set_root)", seconds, "one row; 50 files sampled"))

    legacy = work / "legacy.sqlite"
    db = sqlite3.connect(legacy)
    for script in MIGRATIONS[:2]:
        db.executescript(script)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (2)")
    db.executemany("INSERT INTO items (path, modality, size, mtime_ns, content_hash, duration, meta, indexed_at) "
                   "VALUES (?, 'text', 1, 1, 'h', NULL, '{}', 0)", [(state.path,) for state, _ in entries])
    db.commit()
    db.close()
    _, seconds = timed(lambda: Catalog(legacy).close())
    rows.append(("migrate a schema-2 catalog to roots", seconds, f"{files} absolute paths rewritten"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=300)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relocate-") as temp:
        work = Path(temp)
        rows = part_one(work / "real", args.notes, args.photos) if args.notes or args.photos else []
        rows += part_two(work / "scale", args.files) if args.files else []
    print("| step | seconds | what happened |")
    print("|---|---:|---|")
    for step, seconds, what in rows:
        print(f"| {step} | {seconds:.3f} | {what} |")


if __name__ == "__main__":
    main()
