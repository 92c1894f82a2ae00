"""Float32 vectors kept row after row in one file on disk, read back by row number.

Why: a compressed index (`sensorium.index.compressed`) answers from codes of a few dozen bytes per
vector, then re-ranks its best candidates exactly against the full-precision vectors. Those stay
here, on disk: ten million 384-d vectors are 15 GB, far more than the memory a search process may
use, and a query needs only a hundred or so rows of them.

Why `pread` and not a memory map: the rows a query re-ranks are scattered. Mapped, every page they
touch joins the process's resident memory (and the kernel's read-ahead pulls in neighbours), so a
serving process that has answered a few thousand queries looks like gigabytes of RSS. Read with
`pread`, the rows are cached by the kernel's page cache, shared and reclaimable, and the process
holds only what it asked for. One `pread` per run of consecutive rows; ~2 µs each.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROW_DTYPE = np.dtype("<f4")


class RowFile:
    """Append float32 rows of `dim` values; read any rows by number. The file has no header: its
    length is rows x dim x 4 bytes, and a torn last row (a crash mid-append) is ignored on open."""

    def __init__(self, path: Path, dim: int):
        self.path = Path(path)
        self.dim = int(dim)
        self.row_bytes = self.dim * ROW_DTYPE.itemsize
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def __len__(self) -> int:
        return os.fstat(self._open()).st_size // self.row_bytes

    def append(self, vectors: np.ndarray) -> int:
        """Write rows at the end (after any torn partial row); returns the first new row's number."""
        rows = np.ascontiguousarray(vectors, dtype=ROW_DTYPE).reshape(-1, self.dim)
        first = len(self)
        self.overwrite(first, rows)
        return first

    def overwrite(self, row: int, vectors: np.ndarray) -> None:
        """Write rows in place from row number `row` (used to zero removed vectors)."""
        data = np.ascontiguousarray(vectors, dtype=ROW_DTYPE).reshape(-1, self.dim).tobytes()
        offset, written = row * self.row_bytes, 0
        while written < len(data):
            written += os.pwrite(self._open(), data[written:], offset + written)

    def truncate(self, rows: int) -> None:
        """Keep only the first `rows` rows (drops rows a crash left beyond what was recorded)."""
        os.ftruncate(self._open(), rows * self.row_bytes)

    def sync(self) -> None:
        os.fsync(self._open())

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The vectors at these row numbers, in the order asked (any order, repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.dim), dtype=ROW_DTYPE)
        if not len(rows):
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"{self.path}: rows {rows.min()}..{rows.max()} asked, the file holds {len(self)}")
        distinct, inverse = np.unique(rows, return_inverse=True)
        runs = np.split(distinct, np.flatnonzero(np.diff(distinct) != 1) + 1)  # consecutive rows: one read
        fd = self._open()
        blocks = [np.frombuffer(_pread_all(fd, len(run) * self.row_bytes, int(run[0]) * self.row_bytes),
                                dtype=ROW_DTYPE).reshape(len(run), self.dim) for run in runs]
        out[:] = np.concatenate(blocks)[inverse.reshape(-1)]
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    """`size` bytes at `offset`: pread returns at most ~2 GB per call on Linux, so loop."""
    parts, done = [], 0
    while done < size:
        part = os.pread(fd, size - done, offset + done)
        if not part:
            raise OSError(f"row file ended at byte {offset + done}, {size - done} bytes short")
        parts.append(part)
        done += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)
