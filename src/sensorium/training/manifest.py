"""The items a CSV or JSON Lines manifest, or a folder per class, names: checked before the first step.

A manifest has one column per modality holding a file path (relative to the manifest) and a label
column; an empty cell means that modality is missing for that item. In JSON Lines a text
modality's value is the text itself (how `sensorium world make` writes its questions). A folder
layout is root/<label>/<stem>.<ext>, files sharing a stem being one item. Problems raise one
ReadError naming the manifest row or the file, found when the dataset is built, not an hour into
training.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, ReadError
from ..modality import modality_of
from ..readers.manifest import is_jsonl, read_jsonl_rows
from .config import ModalitySpec

SERIES_EXTENSIONS = (".npy", ".csv")
KIND_EXTENSIONS = {"series": SERIES_EXTENSIONS, "array": (".npy",)}


@dataclass
class Item:
    files: dict[str, Path | None]  # modality -> file, None = missing
    labels: dict[str, str]  # task -> class name
    origin: str  # "manifest.csv row 4" or the folder, for error messages
    texts: dict[str, str] = field(default_factory=dict)  # modality -> text given in the manifest itself


def _kind_accepts(spec: ModalitySpec, path: Path) -> bool:
    if spec.kind in ("image", "audio", "text"):
        return modality_of(path) == spec.kind
    return path.suffix.lower() in KIND_EXTENSIONS[spec.kind]


def _manifest_rows(path: Path) -> tuple[list[tuple[str, dict]], list[str]]:
    """(where, row) pairs of a CSV manifest (a header row) or a JSON Lines one (an object per line)."""
    if not path.is_file():
        raise ReadError(path, "no such manifest file")
    if is_jsonl(path):
        rows = read_jsonl_rows(path)
        columns = {}
        for _, row in rows:
            columns.update(dict.fromkeys(row))
        return [(f"line {number}", row) for number, row in rows], list(columns)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = [(f"row {number}", row) for number, row in enumerate(reader, start=2)]  # row 1: the header
            return rows, list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReadError(path, f"not a readable CSV manifest ({exc})") from exc


def _cell(row: dict, column: str, path: Path, where: str) -> str:
    value = row.get(column)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise ReadError(path, f"{where}, column {column!r}: a {type(value).__name__}, not a single value")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def read_manifest(path: Path, specs: Mapping[str, ModalitySpec], label_columns: Sequence[str]) -> list[Item]:
    """Parse and check a manifest: columns exist, files exist and suit their modality, labels given.

    A CSV cell of a text modality names a text file; in JSON Lines (.jsonl) it holds the text itself
    (a question, a caption), which a CSV cell cannot carry safely.
    """
    rows, header = _manifest_rows(path)
    if not rows:
        raise ReadError(path, "manifest has no rows")
    for column in [s.column for s in specs.values()] + list(label_columns):
        if column not in header:
            raise ReadError(path, f"no column {column!r} (columns: {', '.join(header)})")
    inline = is_jsonl(path)
    items = []
    for where, row in rows:
        files: dict[str, Path | None] = {}
        texts: dict[str, str] = {}
        for name, spec in specs.items():
            cell = _cell(row, spec.column, path, where)
            files[name] = None
            if not cell:
                continue
            if inline and spec.kind == "text":
                texts[name] = cell
                continue
            file = Path(cell) if Path(cell).is_absolute() else path.parent / cell
            if not file.is_file():
                raise ReadError(path, f"{where}, column {spec.column!r}: file {cell} does not exist")
            if not _kind_accepts(spec, file):
                raise ReadError(path, f"{where}, column {spec.column!r}: {cell} is not a {spec.kind} file")
            files[name] = file
        if all(f is None for f in files.values()) and not texts:
            raise ReadError(path, f"{where}: every modality is missing ({', '.join(specs)})")
        labels = {}
        for column in label_columns:
            value = _cell(row, column, path, where)
            if not value:
                raise ReadError(path, f"{where}, column {column!r}: empty label")
            labels[column] = value
        items.append(Item(files, labels, f"{path} {where}", texts))
    return items


def read_folder(root: Path, specs: Mapping[str, ModalitySpec], label_column: str) -> list[Item]:
    """root/<label>/<stem>.<ext>: files with the same stem in one class folder are one item."""
    if not root.is_dir():
        raise ReadError(root, "no such data folder")
    by_kind: dict[str, str] = {}
    for name, spec in specs.items():
        if spec.kind in by_kind:
            raise ConfigError(f"data.modalities.{name}: a folder layout cannot hold two {spec.kind} modalities; use a manifest")
        by_kind[spec.kind] = name
    items = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        groups: dict[str, dict[str, Path]] = {}
        for file in sorted(class_dir.iterdir()):
            if not file.is_file() or file.name.startswith("."):
                continue
            name = next((n for n, s in specs.items() if _kind_accepts(s, file)), None)
            if name is None:
                continue
            slot = groups.setdefault(file.stem, {})
            if name in slot:
                raise ReadError(file, f"two {name} files share the stem {file.stem!r} ({slot[name].name})")
            slot[name] = file
        for stem, found in groups.items():
            files = {name: found.get(name) for name in specs}
            items.append(Item(files, {label_column: class_dir.name}, str(class_dir / stem)))
    if not items:
        raise ReadError(root, f"no class folder holds files of the modalities {', '.join(specs)}")
    return items
