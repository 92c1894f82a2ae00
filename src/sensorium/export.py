"""Embed a folder straight to a Parquet file, without a collection: for people who train on vectors.

`export_vectors(folder, out)` (and `sensorium embed DIR -o vectors.parquet`) reads and embeds every
supported file under `folder` with the same experts and steps as indexing (`sensorium.indexing`),
in this process, in N local worker processes or in Ray actors (`sensorium.workers`), and writes one
row per segment and space:

    path (string), modality, segment (its order in the file, from 0), source, start, end (seconds or
    null), text, space ("shared", "image", "audio", ...), vector (list<float32>, unit length)

Rows arrive as files finish (any order); (path, segment, space) identifies one. The file is written
beside `out` and renamed into place at the end, so a stopped or failed run never leaves a file
that looks complete. Files that could not be read or embedded are listed in the report, not in
the table. pyarrow is needed (`pip install 'sensorium[tables]'`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError, SensoriumError
from .experts import ExpertConfig
from .indexing import FileWork, Progress, ShouldStop, batch_entries, embed_entries, run_on_pool
from .workers import check_workers, make_pool

ROWS_PER_GROUP = 8192
COLUMNS = ("path", "modality", "segment", "source", "start", "end", "text", "space", "vector")


@dataclass
class ExportReport:
    out: str
    files: int = 0
    segments: int = 0
    rows: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("out", "files", "segments", "rows", "cancelled", "seconds")}
        out["failed"] = [{"path": p, "reason": r} for p, r in self.failed]
        return out


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ConfigError("writing Parquet needs pyarrow: pip install 'sensorium[tables]'") from exc
    return pyarrow, pyarrow.parquet


class _RowWriter:
    """Rows buffered and written a row group at a time (flat memory however large the folder)."""

    def __init__(self, target: Path):
        self.pa, pq = _pyarrow()
        pa = self.pa
        self.schema = pa.schema([("path", pa.string()), ("modality", pa.string()), ("segment", pa.int32()),
                                 ("source", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
                                 ("text", pa.string()), ("space", pa.string()), ("vector", pa.list_(pa.float32()))])
        self.writer = pq.ParquetWriter(str(target), self.schema)
        self.columns: dict[str, list] = {name: [] for name in COLUMNS}

    def add(self, work: FileWork) -> int:
        rows = 0
        for position, segment in enumerate(work.segments or []):
            for space, vector in sorted(segment.vectors.items()):
                values = (work.path, work.modality, position, str(getattr(segment.source, "value", segment.source)),
                          segment.start, segment.end, segment.text or "", space,
                          np.asarray(vector, dtype=np.float32).reshape(-1))
                for name, value in zip(COLUMNS, values):
                    self.columns[name].append(value)
                rows += 1
        if len(self.columns["path"]) >= ROWS_PER_GROUP:
            self.flush()
        return rows

    def flush(self) -> None:
        """One row group; the vectors go to Arrow as one float32 buffer and its offsets (a Python
        list of floats per row would take 4x the memory and most of the time)."""
        if not self.columns["path"]:
            return
        pa = self.pa
        vectors = self.columns["vector"]
        offsets = np.zeros(len(vectors) + 1, dtype=np.int32)
        np.cumsum([len(v) for v in vectors], out=offsets[1:])
        values = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(vectors)))
        arrays = [pa.array(self.columns[name], type=self.schema.field(name).type) for name in COLUMNS[:-1]]
        self.writer.write_table(pa.Table.from_arrays([*arrays, values], schema=self.schema))
        self.columns = {name: [] for name in COLUMNS}

    def close(self) -> None:
        self.flush()
        self.writer.close()


def export_vectors(folder: str | Path, out: str | Path, config: ExpertConfig | None = None,
                   workers: int | None = None, ray: str | bool | None = None, pool=None,
                   progress: Progress | None = None, should_stop: ShouldStop | None = None) -> ExportReport:
    """Embed every supported file under `folder` into the Parquet file `out` (see the module notes).
    `workers`, `ray` and `pool` as for `Collection.index`."""
    from .index.scan import scan

    folder, out = Path(folder).expanduser().resolve(), Path(out).expanduser().resolve()
    if not folder.exists():
        raise SensoriumError(f"{folder}: no such file or folder")
    check_workers(workers)
    started = time.perf_counter()
    config = config or ExpertConfig()
    entries = [(scanned.path, scanned.modality) for scanned in scan(folder) if Path(scanned.path) != out]
    report = ExportReport(out=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    writer = _RowWriter(partial)
    total = len(entries)

    def keep(work: FileWork) -> None:
        report.files += 1
        if work.error is not None:
            report.failed.append((work.path, work.error))
        else:
            report.segments += len(work.segments or [])
            report.rows += writer.add(work)
        if progress:
            progress(report.files, total, work.path)

    made = None
    try:
        if pool is None and entries:
            made = pool = make_pool(workers, ray, config)
        if pool is not None:
            report.cancelled = run_on_pool(pool, entries, keep, should_stop)
        else:
            from .experts import Experts
            from .space.embed import Embedder

            embedder = Embedder(Experts(config))
            for task in batch_entries(entries):
                if should_stop is not None and should_stop():
                    report.cancelled = True
                    break
                for work in embed_entries(embedder, task.entries):
                    keep(work)
        writer.close()
        if report.cancelled:
            partial.unlink(missing_ok=True)
        else:
            os.replace(partial, out)
    except BaseException:
        try:
            writer.writer.close()
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        partial.unlink(missing_ok=True)
        raise
    finally:
        if made is not None:
            made.close()
    report.seconds = time.perf_counter() - started
    return report
