"""Cold `sensorium search`: a new process, to its first printed result, on a 10,000-item collection.

    .venv/bin/python benchmarks/cold_search.py [--items 10000] [--runs 5]

The collection is built directly through the catalog and vector store with synthetic vectors
(the issue allows synthetic vectors for scale); the query runs the real CLI, text encoder included.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".benchmarks-cache"


def build(directory: Path, items: int, seed: int = 0) -> None:
    from sensorium import Collection
    from sensorium.index.catalog import FileState, NewSegment

    marker = directory / ".complete"
    if marker.exists():
        return
    rng = np.random.default_rng(seed)
    collection = Collection(directory)
    centres = rng.normal(size=(64, 384)).astype(np.float32)
    kinds = ["image", "audio", "text", "video"]
    shared, image = collection.store("shared"), collection.store("image")
    for number in range(items):
        vector = centres[number % 64] + 0.5 * rng.normal(size=384).astype(np.float32)
        vector /= np.linalg.norm(vector)
        native = rng.normal(size=1280).astype(np.float32)
        native /= np.linalg.norm(native)
        kind = kinds[number % 4]
        vectors = {"shared": vector} | ({"image": native} if kind == "image" else {})
        state = FileState(f"/synthetic/{kind}/{number:06d}.dat", 1000 + number, number, f"{number:032x}")
        _, ids, _ = collection.catalog.put_item(state, kind, None, {}, [
            NewSegment(start=None, end=None, source=kind, text=f"synthetic item {number} cluster {number % 64}",
                       vectors=vectors)])
        shared.add(np.asarray(ids, dtype=np.int64), vector[None])
        if kind == "image":
            image.add(np.asarray(ids, dtype=np.int64), native[None])
    shared.save()
    image.save()
    collection.close()
    marker.touch()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    directory = CACHE / f"cold-search-{args.items}"
    build(directory, args.items)
    command = [str(ROOT / ".venv" / "bin" / "sensorium"), "search", "a cat on a sofa", "-c", str(directory), "-k", "5"]
    times = []
    for _ in range(args.runs + 1):  # the first run warms the OS file cache
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = process.stdout.readline()
        times.append(time.perf_counter() - began)
        process.communicate()
        assert first.strip().startswith("1."), (first, process.returncode)
    times = times[1:]
    print(f"cold `sensorium search` on {args.items} items: median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s, max {max(times):.2f} s over {args.runs} runs (new process to first result)")


if __name__ == "__main__":
    main()
