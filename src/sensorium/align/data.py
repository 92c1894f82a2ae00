"""Paired training data: a CSV/JSONL manifest of two columns, or a folder of photo + caption files.

Every pair has a left and a right side; each side is either a file (image, audio ...) or a text.
A side may be empty (missing modality) when allowed, which the losses handle by presence masks.
Validation happens once, up front, and errors name the manifest row or the file at fault.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ReadError
from ..modality import TEXT, modality_of
from ..readers.manifest import is_jsonl, read_jsonl_rows


@dataclass(frozen=True)
class Pair:
    left: str | Path | None  # a Path for a file side, a str for a text side, None when missing
    right: str | Path | None
    group: str = ""  # pairs of the same group (e.g. 5 captions of one photo) are never negatives


_EXTRA_FIELDS = "\0extra"  # where csv puts the fields of a row longer than the header


def _rows(manifest: Path) -> list[dict]:
    suffix = manifest.suffix.lower()
    if not manifest.is_file():
        raise ReadError(manifest, "manifest not found")
    try:
        text = manifest.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReadError(manifest, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    if suffix == ".csv":
        try:
            rows = list(csv.DictReader(text.splitlines(), restkey=_EXTRA_FIELDS))
        except csv.Error as exc:
            raise ReadError(manifest, f"not a readable CSV manifest ({exc})") from exc
        for number, row in enumerate(rows, start=1):
            if _EXTRA_FIELDS in row:
                raise ReadError(manifest, f"row {number}: {len(row[_EXTRA_FIELDS])} more fields than the header has columns")
        return rows
    if is_jsonl(manifest):
        return [row for _, row in read_jsonl_rows(manifest)]
    raise ReadError(manifest, "manifest must be .csv or .jsonl")


def _side(value, modality: str, base: Path, manifest: Path, row: int, column: str, allow_missing: bool):
    if value is None or (isinstance(value, str) and not value.strip()):
        if allow_missing:
            return None
        raise ReadError(manifest, f"row {row}: column {column!r} is empty")
    if modality == TEXT:
        return str(value).strip()
    path = Path(str(value))
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ReadError(manifest, f"row {row}: {column} file {path} does not exist")
    if modality_of(path) != modality:
        raise ReadError(manifest, f"row {row}: {column} file {path} is not {modality}")
    return path


def load_pairs(manifest: str | Path, left: str = "image", right: str = "caption",
               left_kind: str = "image", right_kind: str = TEXT, group: str | None = None,
               allow_missing: bool = False) -> list[Pair]:
    """Pairs from a manifest; file columns are resolved relative to the manifest's folder.

    `group` names a column whose value groups pairs; by default file sides group by their path.
    """
    manifest = Path(manifest)
    rows = _rows(manifest)
    if not rows:
        raise ReadError(manifest, "manifest has no rows")
    for column in (left, right):
        if column not in rows[0]:
            raise ConfigError(f"{manifest}: no column {column!r} (has {sorted(rows[0])})")
    pairs = []
    for number, row in enumerate(rows, start=1):
        a = _side(row.get(left), left_kind, manifest.parent, manifest, number, left, allow_missing)
        b = _side(row.get(right), right_kind, manifest.parent, manifest, number, right, allow_missing)
        if a is None and b is None:
            raise ReadError(manifest, f"row {number}: both {left!r} and {right!r} are empty")
        key = str(row.get(group, "")) if group else str(a if isinstance(a, Path) else b if isinstance(b, Path) else number)
        pairs.append(Pair(a, b, key))
    return pairs


def pairs_from_folder(folder: str | Path) -> list[Pair]:
    """Folder layout: NAME.jpg beside NAME.txt holding one caption per line (one pair per line)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReadError(folder, "not a folder")
    pairs = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() == ".txt" or not path.is_file() or modality_of(path) is None:
            continue
        captions_file = path.with_suffix(".txt")
        if not captions_file.is_file():
            raise ReadError(path, f"no caption file {captions_file.name} beside it")
        captions = [line.strip() for line in captions_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not captions:
            raise ReadError(captions_file, "caption file is empty")
        pairs.extend(Pair(path, caption, str(path)) for caption in captions)
    if not pairs:
        raise ReadError(folder, "no paired files found (expected NAME.jpg + NAME.txt)")
    return pairs
