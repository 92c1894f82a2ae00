"""ANN search over a large space in its default shards: one shard after another, or several at once.

The store alone, without a catalog (at a million vectors the catalog would take longer to fill than
the index): synthetic clustered 384-d vectors added the way the indexer adds them, saved, reopened
as memory-mapped views the way a search process sees them, then warm searches timed both ways,
interleaved query by query. Recall@10 against exact search is computed after the timing.

    .venv/bin/python -m benchmarks.speed.shard_search [--n 1000000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from benchmarks.speed.ann_compare import DIM, alternating, clustered, make_queries, print_rows

from sensorium.index import vectors
from sensorium.index.vectors import VectorStore

K = 10
BATCH = 20_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    data = clustered(args.n, DIM, seed=args.n)
    queries = make_queries(data, args.queries, seed=7)
    threads = vectors.SEARCH_THREADS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = VectorStore(Path(tmp), "shared", DIM)
        t0 = time.perf_counter()
        with Progress() as progress:
            task = progress.add_task("adding vectors", total=args.n)
            for start in range(0, args.n, BATCH):
                store.add(np.arange(start, min(start + BATCH, args.n)), data[start:start + BATCH], new=True)
                progress.advance(task, min(BATCH, args.n - start))
        store.save()
        rows.append(("add + save", f"{time.perf_counter() - t0:.0f} s"))
        del store
        reader = VectorStore(Path(tmp), "shared", DIM)
        rows.append(("shards (default size)", str(len(reader._current()))))
        ways = {"shards 1 at a time": 1, f"{threads} shards at once": threads}
        times = {way: [] for way in ways}
        found = {way: [] for way in ways}
        for number, q in enumerate(list(queries[:20]) + list(queries)):
            for way, count in alternating(ways.items(), number):
                vectors.SEARCH_THREADS = count
                t0 = time.perf_counter()
                hits = reader.search(q, K)
                if number >= 20:
                    times[way].append((time.perf_counter() - t0) * 1000)
                    found[way].append({i for i, _ in hits})
        vectors.SEARCH_THREADS = threads
        truth = [set(np.argpartition(-(data @ q), K)[:K].tolist()) for q in queries]
        for way in ways:
            recall = np.mean([len(t & f) / K for t, f in zip(truth, found[way])])
            rows.append((f"warm ANN search p50 | p99, {way}",
                         f"{np.percentile(times[way], 50):.2f} | {np.percentile(times[way], 99):.2f} ms"))
            rows.append((f"recall@10, {way}", f"{recall:.3f}"))
        first, second = (np.median(t) for t in times.values())
        rows.append(("p50 ratio, one at a time / at once", f"{first / second:.2f}x"))

    print_rows(f"measure (n = {args.n} vectors, {DIM}-d)", rows)


if __name__ == "__main__":
    main()
