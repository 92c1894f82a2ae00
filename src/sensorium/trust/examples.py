"""Labelled examples for calibration: a folder with one subfolder per label, or a CSV manifest.

    EXAMPLES/yes/*.wav, EXAMPLES/no/*.wav ...         the subfolder's name is the label
    examples.csv with a header `path,label`            paths relative to the CSV's folder

Only files are listed here (nothing is decoded); every problem names the file or row at fault.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import ConfigError


def labelled_examples(source: str | Path) -> list[tuple[Path, str]]:
    """(file, label) pairs, in a stable order."""
    source = Path(source)
    if source.is_dir():
        pairs = [(path, folder.name) for folder in sorted(source.iterdir())
                 if folder.is_dir() and not folder.name.startswith(".")
                 for path in sorted(folder.rglob("*")) if path.is_file() and not path.name.startswith(".")]
        if not pairs:
            raise ConfigError(f"{source}: no labelled examples (expected one subfolder of files per label)")
        return pairs
    if source.is_file():
        return _manifest(source)
    raise ConfigError(f"{source}: no such folder or manifest")


def _manifest(path: Path) -> list[tuple[Path, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"{path}: not a readable CSV manifest ({error})") from error
    pairs = []
    for number, row in enumerate(rows, start=2):  # line numbers as an editor shows them
        file, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not file or not label:
            raise ConfigError(f"{path}, line {number}: needs 'path' and 'label' columns, both filled")
        pairs.append(((path.parent / file), label))
    if not pairs:
        raise ConfigError(f"{path}: no rows (expected a header `path,label` and one row per example)")
    return pairs
