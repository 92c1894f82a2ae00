"""Training data held as arrays or tables instead of one file per item.

A dataset of 60,000 spectrograms is one (60000, 112, 112) array in MultiBench, a Parquet file or a
Hugging Face `datasets` folder elsewhere; writing it out as 60,000 small files only to read them
back costs time and inodes. These sources read such data where it lies:

- one `.npy` file per column (`{ image = "image/train_data.npy", label = "train_labels.npy" }`,
  MultiBench's layout), read row by row at its offset in the file, so a 3 GB array costs the
  process no memory of its own (the operating system's file cache keeps hot rows);
- an `.npz` archive, a key per column; stored members are read by offset like `.npy` files,
  compressed ones are decompressed into memory once;
- LeCun's IDX files (MNIST, Fashion-MNIST: `read_idx`);
- a Parquet or Arrow IPC table, and a folder written by `datasets.Dataset.save_to_disk` (its Arrow
  files are memory-mapped; `ClassLabel` columns give their class names). Reading them needs pyarrow
  (`pip install 'sensorium[tables]'`); `datasets` itself is not needed.

A column is numbers (any shape per row), strings, or encoded bytes (a PNG, a WAV; Hugging Face's
Image and Audio features store `{bytes, path}`); a null cell is a missing modality.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ReadError

TABLE_SUFFIXES = (".parquet", ".arrow", ".feather", ".ipc")
ARRAY_SUFFIXES = (".npz",)
HF_STATE = "state.json"  # what `datasets.Dataset.save_to_disk` writes beside its Arrow files


def is_table_source(source: Path | Mapping[str, Path]) -> bool:
    """Whether a data source is read by this module (and not as a CSV manifest or class folders)."""
    if isinstance(source, Mapping):
        return True
    source = Path(source)
    if source.is_dir():
        return (source / HF_STATE).is_file()
    return source.suffix.lower() in TABLE_SUFFIXES + ARRAY_SUFFIXES


class NpyColumn:
    """Rows of an uncompressed .npy array (alone or stored in an .npz) read at their file offset.

    Each read is one `os.pread`, so nothing but the rows asked for enters the process; unlike a
    memory map, pages read once do not stay in the process's resident memory.
    """

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype, fortran: bool):
        if fortran and len(shape) > 1:
            raise ReadError(path, "a Fortran-ordered array cannot be read row by row; save it C-ordered")
        if dtype.hasobject:
            raise ReadError(path, "an array of Python objects (pickled) is never read; save numbers")
        if not shape:
            raise ReadError(path, "a 0-d array holds no rows")
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, dtype
        self.row_shape = shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize
        self._fd: int | None = None
        self._pid = -1

    @classmethod
    def open(cls, path: Path) -> "NpyColumn":
        with path.open("rb") as handle:
            shape, fortran, dtype = _npy_header(handle, path)
            return cls(path, handle.tell(), shape, dtype, fortran)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        if self._fd is None or self._pid != os.getpid():  # a DataLoader worker opens its own descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        raw = os.pread(self._fd, self.row_bytes, self.offset + int(i) * self.row_bytes)
        if len(raw) != self.row_bytes:
            raise ReadError(self.path, f"row {i}: the file ends early (truncated array)")
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.row_shape)

    def take(self, rows: Sequence[int]) -> np.ndarray:
        """Several rows as one (len(rows), ...) array: one read per run of consecutive rows (a batch scored
        in order is one read), instead of one per row."""
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        if not self.row_bytes:
            return out
        flat = out.reshape(len(rows), -1).view(np.uint8)
        start = 0
        while start < len(rows):
            end = start + 1
            while end < len(rows) and int(rows[end]) == int(rows[end - 1]) + 1:
                end += 1
            wanted = (end - start) * self.row_bytes
            raw = os.pread(self._fd, wanted, self.offset + int(rows[start]) * self.row_bytes)
            if len(raw) != wanted:
                raise ReadError(self.path, f"row {int(rows[start]) + len(raw) // max(self.row_bytes, 1)}: the file "
                                           f"ends early (truncated array)")
            flat[start:end] = np.frombuffer(raw, dtype=np.uint8).reshape(end - start, -1)
            start = end
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self):
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)


def _npy_header(handle, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        major, _ = np.lib.format.read_magic(handle)
        read = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}.get(major)
        if read is None:
            raise ValueError(f"unsupported .npy version {major}")
        shape, fortran, dtype = read(handle)
    except ValueError as exc:
        raise ReadError(path, f"not a .npy array ({exc})") from exc
    return tuple(shape), bool(fortran), np.dtype(dtype)


def npz_columns(path: Path) -> dict[str, Any]:
    """Every array of an .npz: stored members read by offset, compressed ones loaded whole."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ReadError(path, f"not an .npz archive ({exc})") from exc
    columns: dict[str, Any] = {}
    with archive, path.open("rb") as handle:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[:-4]
            if info.compress_type == zipfile.ZIP_STORED:
                handle.seek(info.header_offset)
                local = handle.read(30)
                name_length, extra_length = struct.unpack("<HH", local[26:30])
                handle.seek(info.header_offset + 30 + name_length + extra_length)
                shape, fortran, dtype = _npy_header(handle, path)
                columns[key] = NpyColumn(path, handle.tell(), shape, dtype, fortran)
            else:
                with archive.open(info) as member:
                    try:
                        columns[key] = np.lib.format.read_array(io.BytesIO(member.read()), allow_pickle=False)
                    except ValueError as exc:
                        raise ReadError(path, f"member {key!r}: not a readable array ({exc})") from exc
    if not columns:
        raise ReadError(path, "the archive holds no arrays")
    return columns


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError("reading Parquet, Arrow or `datasets` folders needs pyarrow: pip install 'sensorium[tables]'") from None
    return pyarrow


class ArrowColumn:
    """Rows of one Arrow column as numpy arrays, strings or bytes (None for a null cell).

    Numeric columns, including fixed-shape nested lists, become one numpy view when every row has
    the same shape; ragged lists (series of different lengths) are sliced per row.
    """

    def __init__(self, chunked, name: str, folder: Path | None = None):
        pa = _pyarrow()
        array = chunked.combine_chunks() if hasattr(chunked, "combine_chunks") else chunked
        if isinstance(array.type, pa.ExtensionType):  # e.g. datasets' Array2D: read its storage
            array = array.storage
        self.name, self.folder, self.array = name, folder, array
        self.valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        self.dense: np.ndarray | None = None
        self.kind = "value"
        types = pa.types
        if types.is_struct(array.type) and array.type.get_field_index("bytes") >= 0:
            self.kind = "bytes"  # datasets' Image / Audio: {bytes, path}
        elif types.is_binary(array.type) or types.is_large_binary(array.type):
            self.kind = "bytes"
        elif types.is_list(array.type) or types.is_large_list(array.type) or types.is_fixed_size_list(array.type):
            self.kind = "list"
            self.dense = _dense(array)
        elif types.is_integer(array.type) or types.is_floating(array.type) or types.is_boolean(array.type):
            self.dense = array.to_numpy(zero_copy_only=False)

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: int):
        if not self.valid[i]:
            return None
        if self.dense is not None:
            return self.dense[i]
        cell = self.array[i]
        if self.kind == "list":
            return _ragged_row(cell)
        if self.kind == "bytes" and hasattr(cell, "keys"):
            record = cell.as_py()
            if record.get("bytes") is not None:
                return record["bytes"]
            if record.get("path"):
                file = Path(record["path"])
                file = file if file.is_absolute() or self.folder is None else self.folder / file
                try:
                    return file.read_bytes()
                except OSError as exc:
                    raise ReadError(file, f"column {self.name!r}, row {i}: {exc.strerror or exc}") from exc
            return None
        return cell.as_py()


def _dense(array) -> np.ndarray | None:
    """(N, ...) numpy of a list column whose rows all share one shape; None when they do not."""
    import pyarrow.compute as pc

    shape, level = [len(array)], array
    while hasattr(level, "flatten") and hasattr(level, "value_lengths"):
        if level.null_count:
            return None
        lengths = pc.unique(level.value_lengths()).to_numpy(zero_copy_only=False)
        if len(lengths) != 1:
            return None
        shape.append(int(lengths[0]))
        level = level.flatten()
    try:
        values = level.to_numpy(zero_copy_only=False)
    except Exception:  # noqa: BLE001 - strings or structs inside lists: per-row reading decides
        return None
    if values.dtype.kind not in "biuf" or values.size != int(np.prod(shape)):
        return None
    return values.reshape(shape)


def _ragged_row(cell) -> np.ndarray:
    values = cell.values
    rows = [_ragged_row(values[j]) for j in range(len(values))] if hasattr(values, "value_lengths") else None
    if rows is None:
        return values.to_numpy(zero_copy_only=False)
    try:
        return np.stack(rows) if rows else np.zeros((0,), np.float32)
    except ValueError as exc:
        raise ValueError(f"a nested list whose inner lengths differ ({exc})") from None


def arrow_columns(path: Path) -> tuple[dict[str, ArrowColumn], dict[str, list[str]]]:
    """Columns of a Parquet / Arrow file or a `datasets` folder, and ClassLabel names where known."""
    pa = _pyarrow()
    names: dict[str, list[str]] = {}
    folder = path if path.is_dir() else path.parent
    try:
        if path.is_dir():
            state = json.loads((path / HF_STATE).read_text(encoding="utf-8"))
            tables = []
            for entry in state.get("_data_files", []):
                with pa.memory_map(str(path / entry["filename"])) as source:
                    tables.append(pa.ipc.open_stream(source).read_all())
            if not tables:
                raise ReadError(path / HF_STATE, "lists no data files")
            table = pa.concat_tables(tables)
            info_file = path / "dataset_info.json"
            if info_file.is_file():
                features = json.loads(info_file.read_text(encoding="utf-8")).get("features") or {}
                for column, feature in features.items():
                    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names"):
                        names[column] = [str(n) for n in feature["names"]]
        elif path.suffix.lower() == ".parquet":
            table = pa.parquet.read_table(path, memory_map=True)
        else:
            with pa.memory_map(str(path)) as source:
                try:
                    table = pa.ipc.open_file(source).read_all()
                except pa.ArrowInvalid:
                    source.seek(0)
                    table = pa.ipc.open_stream(source).read_all()
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
        raise ReadError(path, f"not a readable table ({exc})") from exc
    return {name: ArrowColumn(table.column(name), name, folder) for name in table.column_names}, names


def open_columns(source: Path | Mapping[str, Path]) -> tuple[dict[str, Any], dict[str, list[str]], str]:
    """(column name -> rows, class names per label column where the source records them, origin)."""
    if isinstance(source, Mapping):
        columns = {}
        for column, file in source.items():
            file = Path(file)
            if not file.is_file():
                raise ReadError(file, f"column {column!r}: no such file")
            if file.suffix.lower() != ".npy":
                raise ReadError(file, f"column {column!r}: a table of files takes .npy arrays, one per column")
            columns[column] = NpyColumn.open(file)
        origin = ", ".join(str(Path(f)) for f in source.values())
        return columns, {}, origin
    source = Path(source)
    if not source.exists():
        raise ReadError(source, "no such data file or folder")
    if source.suffix.lower() == ".npz":
        return npz_columns(source), {}, str(source)
    columns, names = arrow_columns(source)
    return columns, names, str(source)


def read_idx(path: Path) -> np.ndarray:
    """LeCun's IDX format (MNIST, Fashion-MNIST): a big-endian header of dimensions, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    except (OSError, IndexError, ValueError, EOFError) as error:
        raise ReadError(path, f"not an IDX file ({error})") from None


def label_strings(column: Any, names: Sequence[str] | None, origin: str, field: str) -> list[str]:
    """A label column as class names: ClassLabel ids through their names, numbers as their digits."""
    values = [column[i] for i in range(len(column))] if not isinstance(column, np.ndarray) else list(column)
    out = []
    for row, value in enumerate(values):
        if value is None:
            raise ReadError(origin, f"row {row}, column {field!r}: empty label")
        if isinstance(value, np.ndarray):
            if value.size != 1:
                raise ReadError(origin, f"row {row}, column {field!r}: a label must be one value, got shape {value.shape}")
            value = value.reshape(()).item()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, (np.integer, int)) and not isinstance(value, bool) and names is not None:
            if not 0 <= int(value) < len(names):
                raise ReadError(origin, f"row {row}, column {field!r}: class id {value} outside the {len(names)} names")
            value = names[int(value)]
        elif isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        out.append(str(value).strip())
    return out
