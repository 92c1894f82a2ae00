"""What merging sparse shards buys after a user deletes most of their older files.

Builds a space of N synthetic 384-d vectors in small shards (so there are many, as in a large
collection), removes a share of the vectors from the older shards, then saves twice from the same
state: once as before (sparse shards kept) and once with `VectorStore._compact`. Times the save and
warm searches over each layout (interleaved) and checks recall against exact search.

    .venv/bin/python -m benchmarks.speed.shard_compaction [--n 100000] [--shard-mib 8] [--remove 0.7]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.speed.ann_compare import DIM, alternating, clustered, make_queries, print_rows

from sensorium.index.vectors import VectorStore

K = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--shard-mib", type=float, default=8.0)
    parser.add_argument("--remove", type=float, default=0.7, help="share of the older shards' vectors removed")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    capacity = int(args.shard_mib * 2**20 // (4 * DIM))
    data = clustered(args.n, DIM, seed=args.n)
    ids = np.arange(args.n, dtype=np.int64)
    older = ids < args.n - capacity  # everything but the newest shard's worth
    rng = np.random.default_rng(0)
    gone = ids[older & (rng.random(args.n) < args.remove)]
    kept = np.setdiff1d(ids, gone)
    queries = make_queries(data, args.queries, seed=7)

    rows, layouts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        t0 = time.perf_counter()
        store = VectorStore(base, "shared", DIM, capacity=capacity)
        store.add(ids, data, new=True)
        store.save()
        rows.append((f"build {args.n} vectors in {capacity}-vector shards", f"{time.perf_counter() - t0:.1f} s"))
        for name, compact in (("sparse shards kept", False), ("sparse shards merged", True)):
            folder = Path(tmp) / name.replace(" ", "-")
            shutil.copytree(base, folder)
            store = VectorStore(folder, "shared", DIM, capacity=capacity)
            if not compact:
                store._compact = lambda: False  # the behaviour before merging existed
            t0 = time.perf_counter()
            store.remove(gone)
            store.save()
            rows.append((f"remove {len(gone)} vectors + save, {name}", f"{time.perf_counter() - t0:.2f} s"))
            reader = VectorStore(folder, "shared", DIM)
            sizes = [shard.size() for shard in reader._current()]
            rows.append((f"shards holding vectors, {name}", f"{sum(1 for s in sizes if s)} ({sum(sizes)} vectors)"))
            assert sum(sizes) == len(kept) and reader.ids().tolist() == kept.tolist()
            layouts[name] = reader
        times = {name: [] for name in layouts}
        found = {name: [] for name in layouts}
        for number, q in enumerate(list(queries[:20]) + list(queries)):
            for name, reader in alternating(layouts.items(), number):  # machine load hits both alike
                t0 = time.perf_counter()
                hits = reader.search(q, K)
                if number >= 20:
                    times[name].append((time.perf_counter() - t0) * 1000)
                    found[name].append({i for i, _ in hits})
        kept_data = data[kept]
        truth = [set(kept[np.argpartition(-(kept_data @ q), K)[:K]].tolist()) for q in queries]
        for name in layouts:
            recall = np.mean([len(t & f) / K for t, f in zip(truth, found[name])])
            rows.append((f"warm search p50 | p99, {name}",
                         f"{np.percentile(times[name], 50):.2f} | {np.percentile(times[name], 99):.2f} ms"))
            rows.append((f"recall@10, {name}", f"{recall:.3f}"))
        ratio = np.median(times["sparse shards kept"]) / np.median(times["sparse shards merged"])
        rows.append(("search p50, kept / merged", f"{ratio:.2f}x"))

    print_rows(f"measure (n = {args.n}, {DIM}-d, {args.remove:.0%} of the older shards removed)", rows)


if __name__ == "__main__":
    main()
