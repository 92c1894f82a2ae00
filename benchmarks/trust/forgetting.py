"""Forgetting at scale: time to forget files from a large collection, and the traces left (none).

    .venv/bin/python -m benchmarks.trust.forgetting [--items 100000] [--forget 1 100 1000]

A collection of `--items` single-segment text items with synthetic 384-d vectors (the experts do
not run: forgetting is storage work) is built through the catalog and vector store; every item's
text holds a word of its own (`tok012345x`). Each round forgets that many random files with
`Collection.forget`, then reads every file of the collection folder (catalog, WAL, shards,
thumbnails) and counts the forgotten items' words and vectors found: the target is 0.
"""
from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
TOKEN = re.compile(rb"tok(\d{6})x")


def build(folder: Path, items: int, seed: int = 0) -> np.ndarray:
    """The collection; returns every item's vector (row = item number)."""
    from sensorium import Collection
    from sensorium.index.catalog import FileState, NewSegment

    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(items, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with Collection(folder) as collection:
        collection.catalog.add_root("/archive")
        store = collection.store("shared")
        for number in range(items):
            state = FileState(f"/archive/{number // 1000:03d}/{number:06d}.md", 100, number, f"{number:032x}")
            _, ids, _ = collection.catalog.put_item(state, "text", None, {}, [NewSegment(
                None, None, "text", f"note tok{number:06d}x of the archive", vectors={"shared": vectors[number]})])
            store.add(np.asarray(ids, dtype=np.int64), vectors[number][None], new=True)
        store.save()
    return vectors


def traces(folder: Path, forgotten: set[int], vectors: np.ndarray) -> tuple[int, int, int]:
    """(forgotten words found, forgotten vectors found, bytes read) over every file under `folder`."""
    heads = {vectors[n][:2].tobytes(): n for n in forgotten}  # 8 bytes: enough to find candidates
    head_values = np.frombuffer(b"".join(heads), dtype="<u8")
    words = found = read = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            data = (Path(dirpath) / name).read_bytes()
            read += len(data)
            words += sum(int(m.group(1)) in forgotten for m in TOKEN.finditer(data))
            for shift in range(0, 8, 4):  # vectors start on 4-byte boundaries
                usable = max(0, len(data) - shift) // 8 * 8
                if not usable:
                    continue
                view = np.frombuffer(data, dtype="<u8", offset=shift, count=usable // 8)
                for position in np.flatnonzero(np.isin(view, head_values)):
                    start = shift + 8 * int(position)
                    number = heads.get(data[start:start + 8])
                    found += number is not None and data[start:start + 4 * DIM] == vectors[number].tobytes()
    return words, found, read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--forget", type=int, nargs="+", default=[1, 100, 1000])
    args = parser.parse_args()
    from sensorium import Collection

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="forgetting-") as temp:
        folder = Path(temp) / "collection"
        began = time.perf_counter()
        vectors = build(folder, args.items)
        print(f"built {args.items} items in {time.perf_counter() - began:.0f} s")
        left = set(range(args.items))
        forgotten: set[int] = set()
        sample = {next(iter(left))}
        words, found, _ = traces(folder, sample, vectors)
        print(f"check of the check: item {min(sample)} before forgetting: {words} words, {found} vectors found")
        print("| files forgotten | seconds | items left | forgotten words found | forgotten vectors found | MB read |")
        print("|---:|---:|---:|---:|---:|---:|")
        for count in args.forget:
            chosen = set(rng.choice(sorted(left), count, replace=False).tolist())
            paths = [f"/archive/{n // 1000:03d}/{n:06d}.md" for n in sorted(chosen)]
            with Collection(folder) as collection:
                began = time.perf_counter()
                result = collection.forget(paths)
                seconds = time.perf_counter() - began
            assert result["items"] == count, result
            left -= chosen
            forgotten |= chosen
            words, found, read = traces(folder, forgotten, vectors)
            print(f"| {count} | {seconds:.2f} | {len(left)} | {words} | {found} | {read / 1e6:.0f} |")


if __name__ == "__main__":
    main()
