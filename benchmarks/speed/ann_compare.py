"""Compare vector-search backends on collection-sized data, to pick the one VectorStore uses.

Data: 384-d float32 L2-normalised vectors drawn from a gaussian mixture (clustered, like real
embeddings, so the ANN graph is not tested on trivially uniform noise). Queries are perturbed
held-out points. Recall@10 is measured against exact numpy brute force.

    .venv/bin/python -m benchmarks.speed.ann_compare --sizes 10000 100000 --threads 2

Measured per backend: build time, add-one-at-a-time cost, delete cost, save / load / view(mmap)
time, warm single-query latency p50/p99 for k=10 (one thread, as a search process does), recall@10,
file size. Backends that cannot delete say so.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
K = 10


def clustered(n: int, dim: int, seed: int, n_centers: int = 256, spread: float = 0.35) -> np.ndarray:
    """Gaussian mixture on the unit sphere: centres, then points scattered around each one."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_centers, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    which = rng.integers(0, n_centers, n)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * (spread / np.sqrt(dim))
    points = centers[which] + noise
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def print_rows(header: str, rows: list[tuple[str, str]]) -> None:
    """A two-column markdown table: measure | value."""
    print(f"| {header} | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def alternating(pairs, number: int) -> list:
    """The ways being compared, in reverse order on every other query: the way timed second would
    otherwise always find the query's part of the index already in the CPU caches."""
    pairs = list(pairs)
    return pairs if number % 2 == 0 else pairs[::-1]


def make_queries(data: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = data[rng.choice(len(data), count, replace=False)]
    q = picks + rng.standard_normal(picks.shape).astype(np.float32) * (0.2 / np.sqrt(DIM))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact_topk(data: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = data @ q
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def latencies(fn, queries: np.ndarray) -> tuple[list[np.ndarray], float, float]:
    for q in queries[:20]:  # warm up
        fn(q)
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(np.asarray(fn(q)))
        times.append((time.perf_counter() - t0) * 1000)
    return found, float(np.percentile(times, 50)), float(np.percentile(times, 99))


# ---------------------------------------------------------------- backends


class NumpyExact:
    name = "numpy exact"

    def build(self, ids, data, threads):
        self.ids, self.data = ids.copy(), data.copy()

    def add_one(self, key, vec):
        self.ids = np.append(self.ids, key)
        self.data = np.vstack([self.data, vec[None]])

    def remove(self, keys):
        keep = ~np.isin(self.ids, keys)
        self.ids, self.data = self.ids[keep], self.data[keep]

    def search(self, q):
        return self.ids[exact_topk(self.data, q, K)]

    def save(self, path):
        np.save(path + ".npy", self.data)
        return path + ".npy"

    def load(self, path, mmap):
        self.data = np.load(path + ".npy", mmap_mode="r" if mmap else None)


class UsearchHNSW:
    def __init__(self, dtype="f32", connectivity=16, expansion_search=64, exact=False):
        self.dtype, self.conn, self.ef, self.exact = dtype, connectivity, expansion_search, exact
        self.name = f"usearch {'exact' if exact else 'hnsw'} {dtype} M={connectivity} ef={expansion_search}"

    def _new(self):
        from usearch.index import Index
        return Index(ndim=DIM, metric="cos", dtype=self.dtype, connectivity=self.conn,
                     expansion_add=128, expansion_search=self.ef)

    def build(self, ids, data, threads):
        self.index = self._new()
        self.index.add(ids, data, threads=threads)

    def add_one(self, key, vec):
        self.index.add(int(key), vec)

    def remove(self, keys):
        self.index.remove(keys)

    def search(self, q):
        return self.index.search(q, K, threads=1, exact=self.exact).keys

    def save(self, path):
        self.index.save(path + ".usearch")
        return path + ".usearch"

    def load(self, path, mmap):
        from usearch.index import Index
        index = self._new()
        (index.view if mmap else index.load)(path + ".usearch")
        self.index = index


class FaissFlat:
    name = "faiss flat IP (exact)"

    def build(self, ids, data, threads):
        import faiss
        faiss.omp_set_num_threads(threads)
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
        self.index.add_with_ids(data, ids)

    def add_one(self, key, vec):
        self.index.add_with_ids(vec[None], np.array([key], dtype=np.int64))

    def remove(self, keys):
        import faiss
        self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(keys, dtype=np.int64)))

    def search(self, q):
        return self.index.search(q[None], K)[1][0]

    def save(self, path):
        import faiss
        faiss.write_index(self.index, path + ".faiss")
        return path + ".faiss"

    def load(self, path, mmap):
        import faiss
        self.index = faiss.read_index(path + ".faiss", faiss.IO_FLAG_MMAP if mmap else 0)


class FaissHNSW(FaissFlat):
    """HNSW in faiss cannot delete: remove is emulated by a tombstone IDSelector at query time."""

    def __init__(self, m=32, ef_search=64):
        self.m, self.ef = m, ef_search
        self.name = f"faiss hnsw M={m} ef={ef_search} (no delete; tombstones)"
        self.dead = np.empty(0, dtype=np.int64)

    def build(self, ids, data, threads):
        import faiss
        faiss.omp_set_num_threads(threads)
        hnsw = faiss.IndexHNSWFlat(DIM, self.m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 128
        self.index = faiss.IndexIDMap2(hnsw)
        self.index.add_with_ids(data, ids)
        faiss.omp_set_num_threads(1)

    def remove(self, keys):
        self.dead = np.union1d(self.dead, np.asarray(keys, dtype=np.int64))

    def search(self, q):
        import faiss
        params = faiss.SearchParametersHNSW(efSearch=self.ef)
        if len(self.dead):
            # IDMap translates ids, so the selector on the inner HNSW cannot see user ids: over-fetch.
            _, labels = self.index.search(q[None], K + len(self.dead), params=params)
            labels = labels[0][~np.isin(labels[0], self.dead)]
            return labels[:K]
        return self.index.search(q[None], K, params=params)[1][0]


class FaissIVF(FaissFlat):
    def remove(self, keys):
        import faiss
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        self.index.remove_ids(faiss.IDSelectorArray(len(keys), faiss.swig_ptr(keys)))

    def __init__(self, nprobe=16):
        self.nprobe = nprobe
        self.name = f"faiss ivf-flat nprobe={nprobe}"

    def build(self, ids, data, threads):
        import faiss
        faiss.omp_set_num_threads(threads)
        nlist = int(np.sqrt(len(data)))
        quant = faiss.IndexFlatIP(DIM)
        ivf = faiss.IndexIVFFlat(quant, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(data[np.random.default_rng(0).choice(len(data), min(len(data), 40 * nlist), replace=False)])
        ivf.nprobe = self.nprobe
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove_ids with arbitrary ids
        self.index = ivf
        self.index.add_with_ids(data, ids)
        faiss.omp_set_num_threads(1)

    def load(self, path, mmap):
        super().load(path, mmap)
        self.index.nprobe = self.nprobe


def measure(backend, ids, data, queries, truth, threads, tmp: Path) -> dict:
    import faiss
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    backend.build(ids, data, threads)
    build_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)

    found, p50, p99 = latencies(backend.search, queries)
    id_truth = [ids[t] for t in truth]
    rec = recall(found, id_truth)

    extra = clustered(200, DIM, seed=99)
    t0 = time.perf_counter()
    for i, vec in enumerate(extra):
        backend.add_one(int(ids.max()) + 1 + i, vec)
    add_ms = (time.perf_counter() - t0) * 1000 / len(extra)

    try:
        t0 = time.perf_counter()
        backend.remove(ids[:100])
        remove_ms = (time.perf_counter() - t0) * 1000 / 100
        # after deleting, the removed ids must never come back
        after = [backend.search(q) for q in queries[:50]]
        leaked = int(sum(np.isin(a, ids[:100]).sum() for a in after))
        remove = f"{remove_ms:.3f}" + ("" if leaked == 0 else f" ({leaked} leaked!)")
    except Exception as exc:  # noqa: BLE001 - report what the backend refuses
        remove = f"unsupported: {type(exc).__name__}"

    base = str(tmp / backend.__class__.__name__)
    t0 = time.perf_counter()
    file = backend.save(base)
    save_s = time.perf_counter() - t0
    size_mb = os.path.getsize(file) / 1e6
    t0 = time.perf_counter()
    backend.load(base, mmap=False)
    load_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        backend.load(base, mmap=True)
        view_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        backend.search(queries[0])
        first_q = (time.perf_counter() - t0) * 1000
        view = f"{view_s * 1000:.1f} ms (+{first_q:.1f} ms 1st q)"
    except Exception as exc:  # noqa: BLE001
        view = f"n/a ({type(exc).__name__})"
    return dict(backend=backend.name, n=len(data), build_s=build_s, add_ms=add_ms, remove_ms=remove,
                save_s=save_s, load_s=load_s, view=view, p50=p50, p99=p99, recall=rec, size_mb=size_mb)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2, help="threads for building only")
    parser.add_argument("--only", nargs="*", help="substring filter on backend names")
    args = parser.parse_args()

    rows = []
    for n in args.sizes:
        data = clustered(n, DIM, seed=n)
        ids = np.arange(1, n + 1, dtype=np.int64) * 3  # non-contiguous ids, like segment ids
        queries = make_queries(data, args.queries, seed=n + 1)
        truth = [exact_topk(data, q, K) for q in queries]
        backends = [NumpyExact(), UsearchHNSW(exact=True), UsearchHNSW(), UsearchHNSW(connectivity=32, expansion_search=128),
                    UsearchHNSW(dtype="f16"), FaissFlat(), FaissHNSW(), FaissIVF()]
        for backend in backends:
            if args.only and not any(s in backend.name for s in args.only):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                row = measure(backend, ids, data, queries, truth, args.threads, Path(tmp))
            rows.append(row)
            print(f"| {row['n']:>7} | {row['backend']:<40} | {row['build_s']:7.2f} | {row['add_ms']:7.3f} | "
                  f"{row['remove_ms']:>12} | {row['save_s']:6.3f} | {row['load_s']:6.3f} | {row['view']:>24} | "
                  f"{row['p50']:6.2f} | {row['p99']:6.2f} | {row['recall']:.3f} | {row['size_mb']:6.1f} |",
                  flush=True)
            del backend


HEADER = ("| n | backend | build s | add-one ms | remove ms/id | save s | load s | view (mmap) | p50 ms | "
          "p99 ms | recall@10 | file MB |")

if __name__ == "__main__":
    print(HEADER)
    print("|" + "---|" * 12)
    main()
