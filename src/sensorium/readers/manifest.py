"""JSON Lines manifests: one JSON object per line, read with the line each came from.

Shared by the learning framework's and the alignment trainer's manifest readers, so both accept
and reject the same files with the same messages (a blank line is skipped; anything else that is
not a JSON object names its line).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ReadError

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def is_jsonl(path: Path) -> bool:
    return Path(path).suffix.lower() in JSONL_SUFFIXES


def read_jsonl_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line of `path`."""
    rows = []
    try:
        with Path(path).open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise ReadError(path, f"line {number}: not JSON ({exc})") from exc
                if not isinstance(row, dict):
                    raise ReadError(path, f"line {number}: not a JSON object")
                rows.append((number, row))
    except UnicodeDecodeError as exc:
        raise ReadError(path, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    return rows
