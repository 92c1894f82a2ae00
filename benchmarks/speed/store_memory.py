"""Memory of the vector stores while a large collection is indexed: one index per space vs shards.

    .venv/bin/python -m benchmarks.speed.store_memory [--photos 50000] [--save-every 1000]

What `Collection.index` does to the ANN indexes for each photo, without the encoders: one 384-d
shared vector and one 1,280-d image vector per photo (synthetic, clustered unit vectors) added
through `VectorStore.add`, with a save every `--save-every` photos (the indexer saves every 30 s).
Each layout runs in its own process, so resident memory (VmRSS, sampled at each tenth of the run,
and the peak VmHWM) is that layout's alone:

  one index   capacity larger than the run: the single usearch file per space of before shards;
  shards      the default capacity (about `SHARD_BYTES` of float32 per shard).

The real 10,000-photo run (`benchmarks/speed/index_memory.py`) showed RSS growing ~9.5 KB per photo after
the models loaded, the size of these indexes; this isolates that part at larger scale.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.speed.index_memory import rss_mb

ROOT = Path(__file__).resolve().parents[2]

SPACES = {"shared": 384, "image": 1280}


def unit_rows(rng: np.random.Generator, centers: np.ndarray, n: int) -> np.ndarray:
    x = centers[rng.integers(0, len(centers), n)] + rng.standard_normal((n, centers.shape[1])).astype(np.float32) * 0.02
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run_layout(layout: str, photos: int, save_every: int) -> dict:
    """Runs in a child process: index `photos` photos' vectors and report memory as it goes."""
    from sensorium.index.vectors import VectorStore

    rng = np.random.default_rng(0)
    centers = {space: rng.standard_normal((64, dim)).astype(np.float32) for space, dim in SPACES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        capacity = photos + 1 if layout == "one index" else None
        stores = {space: VectorStore(Path(tmp), space, dim, capacity=capacity) for space, dim in SPACES.items()}
        curve, save_seconds = [], 0.0
        step = max(1, photos // 10)
        began = time.perf_counter()
        batch = 50  # vectors made 50 photos at a time; added one photo at a time, as the indexer does
        for start in range(0, photos, batch):
            made = {space: unit_rows(rng, centers[space], batch) for space in SPACES}
            for j in range(batch):
                photo = start + j
                for space, store in stores.items():
                    store.add(np.array([photo]), made[space][j:j + 1], new=True)  # as Indexer._store
                if (photo + 1) % save_every == 0:
                    t0 = time.perf_counter()
                    for store in stores.values():
                        store.save()
                    save_seconds += time.perf_counter() - t0
                if photo % step == 0 or photo == photos - 1:
                    curve.append((photo + 1, rss_mb()))
        for store in stores.values():
            store.save()
        seconds = time.perf_counter() - began
        files = sorted(p.name for p in Path(tmp).glob("*.usearch"))
        shards = {space: sum(1 for name in files if name.startswith(f"vectors-{space}.")) for space in SPACES}
    return {"curve": curve, "peak": rss_mb("VmHWM"), "seconds": seconds, "save_seconds": save_seconds,
            "shards": shards}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=50_000)
    parser.add_argument("--save-every", type=int, default=1000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_layout(args.child, args.photos, args.save_every)))
        return

    results = {}
    for layout in ("one index", "shards"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.speed.store_memory", "--child", layout,
                              "--photos", str(args.photos), "--save-every", str(args.save_every)],
                             cwd=ROOT, capture_output=True, text=True, check=True)
        results[layout] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{layout}: {results[layout]['seconds']:.0f} s", file=sys.stderr, flush=True)

    print(f"{args.photos:,} photos, one 384-d and one 1,280-d vector each, saved every {args.save_every:,}\n")
    print("| photos added | " + " | ".join(f"RSS MB, {layout}" for layout in results) + " |")
    print("|---|" + "---|" * len(results))
    curves = [results[layout]["curve"] for layout in results]
    for points in zip(*curves):
        print(f"| {points[0][0]:,} | " + " | ".join(f"{rss:.0f}" for _, rss in points) + " |")
    print(f"| **peak (VmHWM)** | " + " | ".join(f"**{results[layout]['peak']:.0f}**" for layout in results) + " |")
    for layout, result in results.items():
        curve = result["curve"]
        half = next(point for point in curve if point[0] >= args.photos // 2)
        slope = (curve[-1][1] - half[1]) * 1024 / max(1, curve[-1][0] - half[0])
        print(f"\n{layout}: growth over the second half {slope:.2f} KB/photo; total {result['seconds']:.0f} s, "
              f"of which saves {result['save_seconds']:.1f} s; shard files {result['shards']}")


if __name__ == "__main__":
    main()
