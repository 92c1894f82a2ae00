"""Cold `sensorium search`: a new process, to its first printed result, on a 10,000-item collection.

    .venv/bin/python -m benchmarks.speed.cold_search [--items 10000] [--runs 5]

The collection is built directly through the catalog and vector store with synthetic vectors
(the issue allows synthetic vectors for scale); the query runs the real CLI, text encoder included.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from benchmarks.common.synthetic import write_synthetic_collection

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".benchmarks-cache"


def build(directory: Path, items: int, seed: int = 0) -> None:
    """`items` synthetic items, a quarter of each kind (no files, no experts run)."""
    from sensorium.index.catalog import FileState

    marker = directory / ".complete"
    if marker.exists():
        return
    kinds = ["image", "audio", "text", "video"]
    entries = []
    for number in range(items):
        kind = kinds[number % 4]
        entries.append((FileState(f"/synthetic/{kind}/{number:06d}.dat", 1000 + number, number, f"{number:032x}"),
                        kind))
    write_synthetic_collection(directory, entries, label="synthetic item", seed=seed)
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
