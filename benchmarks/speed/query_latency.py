"""End-to-end query latency of the storage layer at collection scale.

Builds a catalog of N synthetic segments (clustered 384-d vectors, 20 segments per item, 10% of
items of kind "audio"), rebuilds the ANN index from the catalog (`sync_with`, the crash-recovery
path), saves it, reopens it as a memory-mapped view the way a search process does, then times warm
queries: ANN search + `catalog.segments` lookup of the hits, with and without a kind filter.
Recall@10 is against exact numpy brute force.

    .venv/bin/python -m benchmarks.speed.query_latency --n 100000 [--one-index]

`--one-index` keeps the space in one usearch file (the layout before shards) for a before/after.
`--shard-mib 8` makes many shards (19 at 100k), the shard count of a collection ten times larger.
Warm searches are timed with the shards searched one at a time and all at once, interleaved.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.speed.ann_compare import DIM, alternating, clustered, make_queries, print_rows

from sensorium.index.catalog import Catalog, FileState, NewSegment
from sensorium.index import vectors
from sensorium.index.vectors import VectorStore

K = 10
PER_ITEM = 20


def percentiles(ms: list[float]) -> str:
    return f"{np.percentile(ms, 50):7.2f} | {np.percentile(ms, 99):7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--one-index", action="store_true",
                        help="one usearch file for the space, as before shards (for before/after)")
    parser.add_argument("--shard-mib", type=float, help="shard size in MiB of float32 (default: the store's)")
    args = parser.parse_args()
    capacity = args.n + 1 if args.one_index else None
    if args.shard_mib:
        capacity = int(args.shard_mib * 2**20 // (4 * DIM))

    data = clustered(args.n, DIM, seed=args.n)
    queries = make_queries(data, args.queries, seed=7)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        catalog = Catalog(folder / "catalog.sqlite")
        t0 = time.perf_counter()
        seg_ids = []
        for item in range(args.n // PER_ITEM):
            kind = "audio" if item % 10 == 0 else "image"
            chunk = data[item * PER_ITEM:(item + 1) * PER_ITEM]
            segs = [NewSegment(float(j), float(j + 1), "frame", f"item {item} segment {j}", [],
                               {"shared": v}) for j, v in enumerate(chunk)]
            _, new, _ = catalog.put_item(FileState(f"/media/{item:06d}.mp4", 1, 1, str(item)), kind, None, {}, segs)
            seg_ids += new
        put_s = time.perf_counter() - t0
        ids = np.asarray(seg_ids, dtype=np.int64)
        rows.append(("catalog put_item, %d items x %d segments" % (args.n // PER_ITEM, PER_ITEM), f"{put_s:.1f} s"))

        t0 = time.perf_counter()
        store = VectorStore(folder / "vectors", "shared", DIM, capacity=capacity)  # where Collection looks
        store.sync_with(catalog)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.save()
        rows.append(("ANN rebuild from catalog (sync_with)", f"{build_s:.1f} s"))
        rows.append(("ANN save (atomic, fsync)", f"{time.perf_counter() - t0:.2f} s"))
        files = list((folder / "vectors").glob("vectors-shared*.usearch"))
        rows.append(("ANN files (shards), total size", f"{len(files)}, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB"))
        catalog.close()

        t0 = time.perf_counter()
        catalog = Catalog(folder / "catalog.sqlite")
        reader = VectorStore(folder / "vectors", "shared", DIM)
        hits = reader.search(queries[0], K)
        catalog.segments([i for i, _ in hits])
        rows.append(("cold open + first query (view/mmap)", f"{(time.perf_counter() - t0) * 1000:.1f} ms"))

        audio = catalog.segment_ids(["audio"])
        is_audio = np.isin(ids, audio)

        def kind_filter():  # what search does per query: the catalog's cached ids of that kind
            return catalog.segment_ids_cached({"audio"})

        threads = vectors.SEARCH_THREADS
        ways = {", shards 1 at a time": 1, f", {threads} shards at once": threads}
        for label, make_filter, mask in (("no filter", lambda: None, None),
                                         ("kind filter (10% audio)", kind_filter, is_audio)):
            ann_ms, total_ms, found = ({way: [] for way in ways} for _ in range(3))
            for q_number, q in enumerate(list(queries[:20]) + list(queries)):
                for way, count in alternating(ways.items(), q_number):  # machine load hits each way alike
                    vectors.SEARCH_THREADS = count
                    t0 = time.perf_counter()
                    hits = reader.search(q, K, allowed=make_filter())
                    t1 = time.perf_counter()
                    segments = catalog.segments([i for i, _ in hits])
                    t2 = time.perf_counter()
                    assert len(segments) == len(hits)
                    if q_number >= 20:  # after the warm-up
                        ann_ms[way].append((t1 - t0) * 1000)
                        total_ms[way].append((t2 - t0) * 1000)
                        found[way].append({i for i, _ in hits})
            # recall after the timing: numpy's BLAS threads spin after a product and would steal the
            # cores from the next search's threads
            truths = []
            for q in queries:
                scores = data @ q
                if mask is not None:
                    scores = np.where(mask, scores, -np.inf)
                truths.append(set(ids[np.argpartition(-scores, K)[:K]].tolist()))
            for way in ways:
                recall = np.mean([len(truth & hits) / K for truth, hits in zip(truths, found[way])])
                rows.append((f"warm ANN search p50 | p99, {label}{way}", percentiles(ann_ms[way]) + " ms"))
                rows.append((f"warm search + segments p50 | p99, {label}{way}", percentiles(total_ms[way]) + " ms"))
                rows.append((f"recall@10, {label}{way}", f"{recall:.3f}"))
        vectors.SEARCH_THREADS = threads
        from sensorium.experts.text import TextEncoder

        # the two fast text backends, interleaved so machine load hits both alike
        encoders = {name: TextEncoder(backend=name) for name in ("onnx", "numpy")}
        texts = [f"photos of {w} at the beach in summer" for w in
                 ("my dog", "a red car", "grandma", "the birthday cake", "fireworks", "our tent")] * 10
        for encoder in encoders.values():
            encoder.encode(texts[:2])
        end_to_end = {name: [] for name in encoders}
        for text in texts:
            for name, encoder in encoders.items():
                t0 = time.perf_counter()
                vector = encoder.encode([text])[0]
                hits = reader.search(vector, K)
                catalog.segments([i for i, _ in hits])
                end_to_end[name].append((time.perf_counter() - t0) * 1000)
        for name, times in end_to_end.items():
            rows.append((f"warm TEXT query end to end, {name} MiniLM (encode + search + segments) p50 | p99",
                         percentiles(times) + " ms"))
        rows.append(("numpy / onnx p50 ratio", f"{np.median(end_to_end['numpy']) / np.median(end_to_end['onnx']):.2f}x"))
        catalog.close()

        # the library call a user makes: hybrid vector + lexical search through Collection
        from sensorium import Collection

        collection = Collection(folder)
        collection.search(text=texts[0], k=K)
        library = {way: [] for way in ways}
        for number, text in enumerate(texts):
            for way, count in alternating(ways.items(), number):
                vectors.SEARCH_THREADS = count
                t0 = time.perf_counter()
                collection.search(text=text, k=K)
                library[way].append((time.perf_counter() - t0) * 1000)
        vectors.SEARCH_THREADS = threads
        for way in ways:
            rows.append((f"warm Collection.search(text=...) p50 | p99 (hybrid, onnx MiniLM){way}",
                         percentiles(library[way]) + " ms"))
        collection.close()

    print_rows(f"measure (n = {args.n} vectors, {DIM}-d)", rows)


if __name__ == "__main__":
    main()
