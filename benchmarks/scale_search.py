"""Ten million vectors on one machine: which index layout holds them in a few gigabytes, and how well.

    .venv/bin/python -m benchmarks.scale_search --n 1000000 [--data synthetic|real]
        [--layouts usearch-f32,usearch-f16,usearch-i8,ivfpq,compressed,hnsw] [--queries 1000] [--report FILE]

The collection's ANN today is usearch HNSW over float32 (`sensorium.index.vectors`): 1,685 MB of
files at a million 384-d vectors, so ~17 GB at ten million, over the 4 GB budget. The candidates
compared here, each built in its own process and served from a fresh one (so each peak RSS is its
own), with the same queries and exact ground truth:

- `usearch-f32`, `usearch-f16`, `usearch-i8`: the current HNSW (connectivity 16, expansion 128 / 64),
  its vectors stored in 4, 2 or 1 byte per dimension, served memory-mapped (`view`) as today.
- `ivfpq`: faiss IVF-PQ (an inverted file of k-means cells, each vector coded in `--pq-bytes` bytes
  by product quantisation; cells and coarse quantiser as `sensorium.index.compressed.factory` picks),
  held in RAM, swept over nprobe and re-rank depth.
- `compressed`: the product's `CompressedStore` (the same IVF-PQ, built as `sensorium layout SPACE
  compressed` builds it, searched through its `search`), at its defaults and a few other settings.
- `hnsw`: the product's default `VectorStore` as a collection builds it (usearch HNSW in shards of
  about 128 MiB, all searched and merged), at expansion_search 64 (the default), 128 and 256.

Every compressed layout re-ranks its top `rerank` candidates exactly, from a float32 file of the
L2-normalised vectors on disk (`sensorium.index.rows.RowFile`, read with pread, so the rows stay in
the page cache and out of the serving process's RSS); a query reads only those rows. Data (`--data`):

- `synthetic`: a hierarchy of topics, subtopics and leaves (`Source`), each point scaled by a
  log-normal norm (sigma 0.25; the layouts are cosine, so they must normalise);
- `real`: derived from real embeddings: the MiniLM sentence vectors of the COCO-mini captions
  (../shared/data), each point a random mix of two of them plus noise, so the set keeps the
  directions and anisotropy real text embeddings have (needs ../shared/data and the text model).

Queries are drawn from the same distribution with another seed (never in the base set); recall@10
is against exact cosine search over the whole set. Settings of one layout run one after the other
over the same queries, so the first reads its re-rank rows from disk where they are not cached and
the later ones find many of them in the page cache: `compressed` runs its defaults again at the end. Latency: one query at a time, one thread (a
search process serves one query per request), 20 warm-up queries, then p50 / p99 over the rest.
Base vectors and ground truth are cached in .benchmarks-cache/scale-search/ (10M: 15 GB + 15 GB).
"""
from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import time
from pathlib import Path

import numpy as np

from sensorium.index.compressed import NPROBE, RERANK, TRAIN_PER_CELL, CompressedStore, cells, factory
from sensorium.index.compressed import pq_bytes as default_pq_bytes
from sensorium.index import vectors as hnsw_store
from sensorium.index.rows import RowFile

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".benchmarks-cache" / "scale-search"
DIM = 384
K = 10
CHUNK = 250_000
LAYOUTS = ("usearch-f32", "usearch-f16", "usearch-i8", "ivfpq", "compressed", "hnsw")
HNSW_EXPANSIONS = (64, 128, 256)  # expansion_search tried on the product's default store


# ---------------------------------------------------------------- data


def _real_vectors() -> np.ndarray:
    """MiniLM vectors of the COCO-mini captions: the seeds of the `real` data."""
    from sensorium.experts.text import TextEncoder
    captions = json.loads((ROOT.parent / "shared/data/coco_mini/captions_train2017.json").read_text())
    texts = sorted({a["caption"].strip() for a in captions["annotations"]})
    vectors = TextEncoder().encode(texts).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class Source:
    """Draws points of one distribution, chunk by chunk: fixed structure (seed 0), points from `rng`.

    `synthetic` is a three-level hierarchy, so that a point has a true neighbourhood (a flat gaussian
    mixture in 384-d puts every member of a cluster at the same distance from a query, which no real
    embedding set does): 1,024 topics, 16 subtopics each, 16 leaves each (262,144 leaves), and a
    point = topic + 0.6 subtopic + 0.4 leaf + 0.25 noise (unit directions). Cosine between two points
    of one leaf is ~0.96, of sibling leaves ~0.86, of one topic ~0.63, unrelated ~0.
    """

    def __init__(self, kind: str, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.kind = kind
        if kind == "synthetic":
            topics = _unit(rng.standard_normal((1024, DIM), dtype=np.float32))
            subtopics = np.repeat(topics, 16, axis=0) + 0.6 * _unit(rng.standard_normal((1024 * 16, DIM), dtype=np.float32))
            self.centres = np.repeat(subtopics, 16, axis=0)
            self.centres += 0.4 * _unit(rng.standard_normal(self.centres.shape, dtype=np.float32))
            self.noise = 0.25
        elif kind == "real":
            self.centres = _real_vectors()
        else:
            raise SystemExit(f"--data {kind}: not one of synthetic, real")

    def draw(self, count: int, rng: np.random.Generator) -> np.ndarray:
        c = self.centres
        if self.kind == "synthetic":
            points = c[rng.integers(0, len(c), count)] + self.noise * _unit(rng.standard_normal((count, DIM), dtype=np.float32))
        else:
            weight = rng.uniform(0.5, 1.0, (count, 1)).astype(np.float32)
            points = (weight * c[rng.integers(0, len(c), count)] + (1 - weight) * c[rng.integers(0, len(c), count)]
                      + rng.standard_normal((count, DIM), dtype=np.float32) * (0.25 / np.sqrt(DIM)))
        points = _unit(points)
        norms = rng.lognormal(0.0, 0.25, (count, 1)).astype(np.float32)
        return (points * norms).astype(np.float32)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def base_vectors(kind: str, n: int) -> Path:
    """The n base vectors (raw, with their norms) as a float32 .npy file, made once and cached."""
    path = CACHE / f"{kind}-{n}.npy"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    source, rng = Source(kind), np.random.default_rng(1)
    partial = path.with_suffix(".partial.npy")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, CHUNK):
        out[start:start + CHUNK] = source.draw(min(CHUNK, n - start), rng)
    out.flush()
    del out
    os.replace(partial, path)
    return path


def normalised_chunks(path: Path):
    """(start, L2-normalised float32 rows) over a base file, CHUNK rows at a time."""
    data = np.load(path, mmap_mode="r")  # only for the header: rows are read, so they stay out of RSS
    count, offset = len(data), data.offset
    del data
    with open(path, "rb") as handle:
        for start in range(0, count, CHUNK):
            handle.seek(offset + start * DIM * 4)
            rows = np.fromfile(handle, dtype=np.float32, count=min(CHUNK, count - start) * DIM).reshape(-1, DIM)
            yield start, rows / np.linalg.norm(rows, axis=1, keepdims=True)


def ground_truth(kind: str, n: int, count: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(normalised queries, their exact top-K ids by cosine), cached beside the base file."""
    path = CACHE / f"{kind}-{n}-truth-{count}{'' if seed == 2 else f'-seed{seed}'}.npz"
    if path.exists():
        saved = np.load(path)
        return saved["queries"], saved["truth"]
    queries = Source(kind).draw(count, np.random.default_rng(seed))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    best_scores = np.full((count, K), -np.inf, dtype=np.float32)
    best_ids = np.zeros((count, K), dtype=np.int64)
    for start, rows in normalised_chunks(base_vectors(kind, n)):
        scores = queries @ rows.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        merged_ids = np.concatenate([best_ids, top + start], axis=1)
        keep = np.argsort(-merged_scores, axis=1)[:, :K]
        best_scores = np.take_along_axis(merged_scores, keep, axis=1)
        best_ids = np.take_along_axis(merged_ids, keep, axis=1)
    np.savez(path, queries=queries, truth=best_ids)
    return queries, best_ids


# ---------------------------------------------------------------- layouts (each in its own process)


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set of this process in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def build(layout: str, base: str, folder: str, threads: int, pq_bytes: int) -> dict:
    """Build one layout from the base file into `folder`; the float32 re-rank file too."""
    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    n = len(np.load(base, mmap_mode="r"))
    started = time.perf_counter()
    if layout == "compressed":  # the product's store, as `sensorium layout SPACE compressed` builds it
        import faiss
        faiss.omp_set_num_threads(threads)
        store = CompressedStore(folder_path, "bench", DIM)
        for start, rows in normalised_chunks(Path(base)):
            store.add(np.arange(start, start + len(rows), dtype=np.int64), rows, new=True)
        store.save()
        seconds = time.perf_counter() - started
        return {"build_s": seconds, "build_peak_mb": _rss_mb()[1],
                "disk": {("vectors.f32" if ".rows." in p.name else "index-" + p.name): p.stat().st_size
                         for p in folder_path.iterdir()}}
    if layout == "hnsw":  # the product's default store: usearch HNSW in shards of ~128 MiB, searched together
        store = hnsw_store.VectorStore(folder_path, "bench", DIM)
        for start, rows in normalised_chunks(Path(base)):
            store.add(np.arange(start, start + len(rows), dtype=np.int64), rows, new=True)
        store.save()
        return {"build_s": time.perf_counter() - started, "build_peak_mb": _rss_mb()[1],
                "disk": {"index-" + p.name: p.stat().st_size for p in folder_path.iterdir()}}
    exact_file = RowFile(folder_path / "vectors.f32", DIM)
    for start, rows in normalised_chunks(Path(base)):
        exact_file.append(rows)
    exact_file.sync()
    if layout.startswith("usearch-"):
        from usearch.index import Index
        index = Index(ndim=DIM, metric="cos", dtype=layout.split("-")[1], connectivity=16,
                      expansion_add=128, expansion_search=64)
        for start, rows in normalised_chunks(Path(base)):
            index.add(np.arange(start, start + len(rows), dtype=np.uint64), rows, threads=threads)
        index.save(str(folder_path / "index.usearch"))
    else:
        import faiss
        faiss.omp_set_num_threads(threads)
        index = faiss.index_factory(DIM, factory(DIM, n).replace(f"PQ{default_pq_bytes(DIM)}", f"PQ{pq_bytes}"),
                                    faiss.METRIC_INNER_PRODUCT)
        faiss.downcast_index(faiss.extract_index_ivf(index)).do_polysemous_training = False  # 40 s at 20k, unused
        sample = np.random.default_rng(3).choice(n, min(n, TRAIN_PER_CELL * cells(n)), replace=False)
        index.train(_unit(np.array(np.load(base, mmap_mode="r")[np.sort(sample)], dtype=np.float32)))
        for start, rows in normalised_chunks(Path(base)):
            index.add_with_ids(rows, np.arange(start, start + len(rows), dtype=np.int64))
        faiss.write_index(index, str(folder_path / "index.faiss"))
    seconds = time.perf_counter() - started
    disk = {p.name: p.stat().st_size for p in folder_path.iterdir()}
    return {"build_s": seconds, "build_peak_mb": _rss_mb()[1], "disk": disk}


def serve(layout: str, folder: str, queries: np.ndarray, truth: np.ndarray, settings: list[dict]) -> list[dict]:
    """Open the layout as a search process would and time one query at a time under each setting."""
    folder_path = Path(folder)
    started = time.perf_counter()
    if layout == "compressed":
        store = CompressedStore(folder_path, "bench", DIM)
        len(store)  # opens it
        open_s, rss_open = time.perf_counter() - started, _rss_mb()[0]
        results = []
        for setting in settings:
            store.nprobe, store.rerank = setting["nprobe"], setting["rerank"]
            results.append({**setting, **_timed(lambda query: np.array([i for i, _ in store.search(query, K)]),
                                                queries, truth)})
        rss, peak = _rss_mb()
        for row in results:
            row.update(open_s=open_s, rss_open_mb=rss_open, rss_mb=rss, rss_peak_mb=peak)
        return results
    if layout == "hnsw":
        import gc

        results = []
        for setting in settings:  # a fresh store per setting; the one before is let go first
            hnsw_store.EXPANSION_SEARCH = setting["ef"]  # read when each shard is opened
            began = time.perf_counter()
            store = hnsw_store.VectorStore(folder_path, "bench", DIM)
            len(store)  # maps every shard
            open_s, rss_open = time.perf_counter() - began, _rss_mb()[0]
            row = {**setting, **_timed(lambda query: np.array([i for i, _ in store.search(query, K)]), queries, truth)}
            rss, peak = _rss_mb()
            results.append({**row, "open_s": open_s, "rss_open_mb": rss_open, "rss_mb": rss, "rss_peak_mb": peak})
            del store
            gc.collect()
        return results
    exact_file = RowFile(folder_path / "vectors.f32", DIM)
    if layout.startswith("usearch-"):
        from usearch.index import Index
        index = Index.restore(str(folder_path / "index.usearch"), view=True)

        def candidates(query, count, setting):
            return index.search(query, count, threads=1).keys.astype(np.int64)
    else:
        import faiss
        faiss.omp_set_num_threads(1)
        index = faiss.read_index(str(folder_path / "index.faiss"))

        def candidates(query, count, setting):
            faiss.extract_index_ivf(index).nprobe = setting["nprobe"]
            return index.search(query[None], count)[1][0]
    open_s = time.perf_counter() - started
    rss_open = _rss_mb()[0]
    results = []
    for setting in settings:
        rerank = setting["rerank"]

        def answer(query):
            found = candidates(query, max(rerank, K), setting)
            found = np.sort(found[found >= 0])
            if rerank <= K:
                return found
            scores = exact_file.read(found) @ query
            return found[np.argsort(-scores)[:K]]
        results.append({**setting, **_timed(answer, queries, truth)})
    rss, peak = _rss_mb()
    for row in results:
        row.update(open_s=open_s, rss_open_mb=rss_open, rss_mb=rss, rss_peak_mb=peak)
    return results


def _timed(answer, queries: np.ndarray, truth: np.ndarray) -> dict:
    """p50 / p99 ms and recall@K of `answer(query) -> ids` over the queries after 20 warm-up ones."""
    for query in queries[:20]:
        answer(query)
    times, hits = [], 0
    for query, true_ids in zip(queries[20:], truth[20:]):
        t0 = time.perf_counter()
        found = answer(query)
        times.append((time.perf_counter() - t0) * 1000)
        hits += len(set(found[:K].tolist()) & set(true_ids.tolist()))
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "recall": hits / (K * len(times))}


def _drop_page_cache() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as error:
        print(f"--cold: could not empty the page cache ({error}); the rows may be cached", flush=True)


def _in_child(function, *args):
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, args)


def settings_for(layout: str) -> list[dict]:
    if layout == "hnsw":
        return [{"ef": ef, "rerank": K} for ef in HNSW_EXPANSIONS]
    if layout == "usearch-f32":
        return [{"rerank": K}]
    if layout.startswith("usearch-"):
        return [{"rerank": K}, {"rerank": 50}]
    if layout == "compressed":
        # the defaults first, with the row file cold in the page cache as far as it can be, and again at the end
        return [{"nprobe": NPROBE, "rerank": RERANK}, {"nprobe": NPROBE, "rerank": 200}, {"nprobe": 64, "rerank": 100},
                {"nprobe": 64, "rerank": 200}, {"nprobe": NPROBE, "rerank": RERANK, "again": True}]
    return [{"nprobe": p, "rerank": r} for p in (16, 32, 64) for r in (50, 100, 200)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--data", default="synthetic", choices=("synthetic", "real"))
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for building")
    parser.add_argument("--pq-bytes", type=int, default=default_pq_bytes(DIM), help="bytes per vector in IVF-PQ codes")
    parser.add_argument("--query-seed", type=int, default=2, help="seed of the queries (another seed: queries "
                        "never looked at)")
    parser.add_argument("--keep", action="store_true", help="keep the built layouts in the cache")
    parser.add_argument("--cold", action="store_true", help="empty the kernel's page cache before serving each "
                        "layout (root only): the first queries then read their re-rank rows from disk")
    parser.add_argument("--report", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    base = base_vectors(args.data, args.n)
    queries, truth = ground_truth(args.data, args.n, args.queries + 20, args.query_seed)
    print(f"data {args.data} n={args.n:,}: ready in {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for layout in args.layouts.split(","):
        folder = CACHE / f"built-{args.data}-{args.n}-{layout}"
        record = folder / "built.json"  # a layout kept by --keep is reused, not built again
        if record.is_file():
            built = json.loads(record.read_text())
        else:
            built = _in_child(build, layout, str(base), str(folder), args.threads, args.pq_bytes)
            if args.keep:
                record.write_text(json.dumps(built))
        if args.cold:
            _drop_page_cache()
        served = _in_child(serve, layout, str(folder), queries, truth, settings_for(layout))
        index_mb = sum(v for k, v in built["disk"].items() if k.startswith("index") and k != "index-built.json") / 2**20
        exact_mb = built["disk"].get("vectors.f32", 0) / 2**20
        for row in served:
            rows.append({"layout": layout, **row, "build_s": built["build_s"], "build_peak_mb": built["build_peak_mb"],
                         "index_mb": index_mb, "exact_mb": exact_mb})
            print(json.dumps(rows[-1]), flush=True)
        if not args.keep:
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
    print(f"\n{args.n:,} {args.data} vectors, {DIM}-d; {args.queries} queries, one at a time, one thread; "
          f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")
    print("| layout | nprobe or ef | re-rank | recall@10 | p50 / p99 ms | RSS serving (peak) MB | index file MB | "
          "float32 file MB | build s (peak MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['layout']}{' (same queries again)' if r.get('again') else ''} | {r.get('nprobe', r.get('ef', ''))} | {r['rerank'] if r['rerank'] > K else 'none'} | {r['recall']:.3f} | "
              f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} | {r['rss_mb']:.0f} ({r['rss_peak_mb']:.0f}) | {r['index_mb']:.0f} | "
              f"{r['exact_mb']:.0f} | {r['build_s']:.0f} ({r['build_peak_mb']:.0f}) |")
    if args.report:
        args.report.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
