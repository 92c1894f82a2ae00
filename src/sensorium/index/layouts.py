"""Which ANN layout a space's vectors are kept in, and opening a store of that layout.

- `hnsw` (the default, `sensorium.index.vectors`): usearch HNSW over float32 in memory-mapped shards;
  the fastest and most exact up to a few million vectors (~1.7 KB per 384-d vector).
- `compressed` (`sensorium.index.compressed`): IVF-PQ codes in memory and float32 rows on disk,
  re-ranked exactly; ~210 bytes of memory per 384-d vector, for ten million and more.

The choice is stored in the catalog (`LAYOUTS_KEY`: space -> layout); spaces not named are `hnsw`.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path

from sensorium.errors import ConfigError


class Layout(str, Enum):
    HNSW = "hnsw"
    COMPRESSED = "compressed"


SUGGEST_COMPRESSED_AT = 2_000_000
"""Vectors in one space from which `sensorium index` suggests the compressed layout: the HNSW files
of 2M 384-d vectors are ~3.4 GB, mapped by every search process; compressed, ~0.4 GB of memory."""

LAYOUTS_KEY = "vector_layouts"
"""Catalog meta key: {space name: layout value} for spaces not in the default layout."""


def layout_of(catalog, space: str) -> Layout:
    """The layout the catalog names for a space (`sensorium layout`), HNSW when it names none."""
    return Layout(catalog.meta(LAYOUTS_KEY, {}).get(space, Layout.HNSW.value))


def choose_layout(catalog, space: str, layout: Layout) -> None:
    """Record a space's layout in the catalog (one write: the switch itself)."""
    catalog.set_meta(LAYOUTS_KEY, {**catalog.meta(LAYOUTS_KEY, {}), space: layout.value})


def forget_layouts(catalog, names: list[str]) -> None:
    """Spaces that are gone keep no layout choice: one made later under the same name starts in
    the default layout, like any new space."""
    chosen = catalog.meta(LAYOUTS_KEY, {})
    if any(name in chosen for name in names):
        catalog.set_meta(LAYOUTS_KEY, {space: layout for space, layout in chosen.items() if space not in names})


def parse_layout(value: str) -> Layout:
    try:
        return Layout(value)
    except ValueError:
        raise ConfigError(f"layout {value!r}: not one of {', '.join(layout.value for layout in Layout)}") from None


def open_store(folder: Path, space: str, dim: int, layout: Layout):
    """A store of this layout for one space (not yet reconciled with the catalog)."""
    if layout is Layout.COMPRESSED:
        from sensorium.index import compressed

        return compressed.CompressedStore(folder, space, dim, train_at=compressed.TRAIN_AT)
    from sensorium.index.vectors import VectorStore

    return VectorStore(folder, space, dim)


def remove_files(folder: Path, space: str, layout: Layout) -> None:
    """Delete one layout's files of a space (its vectors stay in the catalog)."""
    if layout is Layout.COMPRESSED:
        from sensorium.index import compressed

        compressed.remove_files(folder, space)
    else:
        from sensorium.index import vectors

        vectors.remove_files(folder, space)


def layout_bytes(layout: Layout, dim: int, count: int) -> int:
    """About how many bytes `count` vectors of `dim` take in a layout's memory (HNSW: its mapped
    files, vector plus graph; compressed: the codes and ids a search process holds)."""
    if layout is Layout.COMPRESSED:
        from sensorium.index.compressed import pq_bytes

        return count * (pq_bytes(dim) + 16)
    return count * (4 * dim + 170)


def file_bytes(folder: Path, space: str, layout: Layout) -> int:
    """Bytes on disk of one layout's files of a space."""
    if layout is Layout.COMPRESSED:
        from sensorium.index.compressed import files

        paths = files(folder, space)
    else:
        from sensorium.index.vectors import shard_numbers, shard_path

        paths = [shard_path(folder, space, number) for number in shard_numbers(folder, space)]
    return sum(path.stat().st_size for path in paths if path.exists())
