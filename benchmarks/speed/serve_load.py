"""Load on `sensorium serve`: concurrent text searches and thumbnail fetches, idle and while indexing.

    .venv/bin/python -m benchmarks.speed.serve_load [--items 10000] [--seconds 60] [--clients 32] [--quick]

The collection's items are REAL JPEGs (so thumbnails are really decoded and drawn), inserted through
the catalog and vector store with synthetic vectors instead of running the experts (as in
cold_search.py); the searches run the real text encoder in the server. The second phase repeats the
load while a real indexing job (the real experts) runs over a folder of new photos.
Each run works on a fresh copy of the cached collection, so thumbnails start cold and the job's
items never leak into the cache.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common.photos import CACHE, photo_folder
from benchmarks.common.synthetic import write_synthetic_collection

from sensorium.serve.process import start_server, stop_server

PHOTO_WIDTH = 320
QUERIES = [
    "a cat on a sofa", "a dog running on the beach", "people eating pizza", "a red bus in the street",
    "a plate of food", "a man riding a bicycle", "a train at the station", "children playing football",
    "a bedroom with a bed", "a kitchen with an oven", "an airplane in the sky", "a horse in a field",
    "a boat on the water", "a giraffe near trees", "someone holding an umbrella", "a laptop on a desk",
    "snow on the mountains", "a bowl of fruit", "traffic lights at night", "a woman with a phone",
    "birds on a fence", "an elephant walking", "a skateboarder doing a trick", "a clock tower",
]


# --- the collection -------------------------------------------------------------------------

def build(directory: Path, photos: Path, items: int, seed: int = 0) -> None:
    """A collection of `items` real photos with synthetic clustered vectors (no experts run)."""
    from sensorium.index.catalog import FileState

    marker = directory / ".complete"
    if marker.exists():
        return
    if directory.exists():
        shutil.rmtree(directory)
    entries = []
    for path in sorted(photos.rglob("*.jpg"))[:items]:
        stat = path.stat()
        entries.append((FileState(str(path.resolve()), stat.st_size, stat.st_mtime_ns, None), "image"))
    write_synthetic_collection(directory, entries, label="photo", seed=seed)
    marker.touch()


# --- the server -----------------------------------------------------------------------------

def call(port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None,
         connection: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        if own:
            connection.close()


# --- the load -------------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []

    def add(self, kind: str, seconds: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if not ok:
                self.errors[kind] += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{kind}: {detail}")


def client(port: int, deadline: float, recorder: Recorder, seed: int) -> None:
    """Search, then fetch thumbnails of one to three of the hits, until the deadline."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def timed(kind: str, path: str):
        nonlocal connection
        began = time.perf_counter()
        try:
            status, body = call(port, "GET", path, connection=connection)
        except (OSError, http.client.HTTPException) as error:
            recorder.add(kind, time.perf_counter() - began, False, f"{type(error).__name__}: {error}")
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            return None
        ok = 200 <= status < 300
        recorder.add(kind, time.perf_counter() - began, ok, f"HTTP {status} {body[:200]!r}")
        return body if ok else None

    while time.monotonic() < deadline:
        query = rng.choice(QUERIES)
        if rng.random() < 0.5:
            query += f" {rng.choice(['outdoors', 'indoors', 'at night', 'in the city', 'close up'])}"
        kind = "&kind=image" if rng.random() < 0.3 else ""
        k = rng.choice([5, 10, 20])
        body = timed("search", f"/api/v1/search?q={query.replace(' ', '+')}&k={k}{kind}")
        if body is None:
            continue
        results = json.loads(body)["results"]
        for hit in rng.sample(results, min(len(results), rng.randint(1, 3))):
            if time.monotonic() >= deadline:
                break
            timed("thumbnail", hit["thumbnail_url"])
    connection.close()


def run_phase(port: int, seconds: float, clients: int, seed: int) -> tuple[Recorder, float]:
    recorder = Recorder()
    began = time.monotonic()
    deadline = began + seconds
    threads = [threading.Thread(target=client, args=(port, deadline, recorder, seed * 1000 + i), daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 180)  # a request in flight at the deadline is allowed to finish
    return recorder, time.monotonic() - began


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def table_rows(phase: str, recorder: Recorder, elapsed: float) -> list[str]:
    rows = []
    total = sum(len(v) for v in recorder.latency.values())
    for kind in ("search", "thumbnail"):
        values = recorder.latency.get(kind, [])
        rows.append(f"| {phase} | {kind} | {len(values)} | {len(values) / elapsed:.1f} | "
                    f"{1000 * percentile(values, 50):.0f} | {1000 * percentile(values, 99):.0f} | "
                    f"{recorder.errors.get(kind, 0)} |")
    rows.append(f"| {phase} | **all** | {total} | **{total / elapsed:.1f}** | "
                f"{1000 * percentile([x for v in recorder.latency.values() for x in v], 50):.0f} | "
                f"{1000 * percentile([x for v in recorder.latency.values() for x in v], 99):.0f} | "
                f"**{sum(recorder.errors.values())}** |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--job-photos", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="2,000 items, 15 s per phase, 8 clients")
    args = parser.parse_args()
    if args.quick:
        args.items, args.seconds, args.clients = 2_000, 15, 8

    began = time.perf_counter()
    photos = photo_folder(args.items, width=PHOTO_WIDTH)
    made = time.perf_counter() - began
    cached = CACHE / f"serve-load-{args.items}"
    build(cached, photos, args.items)
    print(f"collection: {args.items} real {PHOTO_WIDTH}px JPEGs with SYNTHETIC vectors (no experts run), "
          f"ready in {time.perf_counter() - began:.0f} s (photos {made:.0f} s; both cached in .benchmarks-cache/)",
          flush=True)
    new_photos = photo_folder(args.job_photos, seed=1, width=640)

    with tempfile.TemporaryDirectory(prefix="serve-load-") as scratch:
        scratch = Path(scratch)
        collection = scratch / "collection"
        shutil.copytree(cached, collection, ignore=shutil.ignore_patterns("thumbnails", "serve.token"))
        incoming_root = scratch / "incoming"
        shutil.copytree(new_photos, incoming_root / "new-photos", ignore=shutil.ignore_patterns(".complete"))
        log = scratch / "server.log"
        started = time.perf_counter()
        process, port = start_server(collection, [photos, incoming_root], log, timeout=120)
        print(f"server up on 127.0.0.1:{port} in {time.perf_counter() - started:.1f} s", flush=True)
        try:
            status, body = call(port, "GET", "/api/v1/search?q=warm+up&k=5")  # loads the text encoder
            assert status == 200, (status, body[:300])

            print(f"phase 1: {args.clients} clients for {args.seconds:.0f} s, no job", flush=True)
            idle, idle_elapsed = run_phase(port, args.seconds, args.clients, seed=1)

            token = (collection / "serve.token").read_text().strip()
            status, body = call(port, "POST", "/api/v1/jobs/index", body={"folder": str(incoming_root / "new-photos")},
                                headers={"Authorization": f"Bearer {token}"})
            assert status == 202, (status, body[:300])
            job = json.loads(body)
            print(f"phase 2: same load while job {job['id']} indexes {args.job_photos} new photos (real experts)",
                  flush=True)
            job_began = time.monotonic()
            busy, busy_elapsed = run_phase(port, args.seconds, args.clients, seed=2)
            state = json.loads(call(port, "GET", f"/api/v1/jobs/{job['id']}")[1])
            job_line = (f"job after the {args.seconds:.0f} s phase: state={state['state']}, "
                        f"{state['done']}/{state['total']} files")
            if state["state"] != "running":
                job_line += f" (error: {state['error']})" if state.get("error") else ""
            else:  # how long it takes to finish without the search load
                while state["state"] == "running" and time.monotonic() - job_began < args.seconds + 600:
                    time.sleep(1)
                    state = json.loads(call(port, "GET", f"/api/v1/jobs/{job['id']}")[1])
                job_line += (f"; without load it then ended {state['state']} {state['done']}/{state['total']} "
                             f"at {time.monotonic() - job_began:.0f} s after the start")
        finally:
            stop_server(process, timeout=40)

    print()
    print(f"`sensorium serve` under load: {args.items} items, {args.clients} clients, {args.seconds:.0f} s per phase, "
          f"{os.cpu_count()} CPU cores (clients and server share them)")
    print()
    print("| phase | request | count | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in table_rows("idle", idle, idle_elapsed) + table_rows("indexing", busy, busy_elapsed):
        print(row)
    print()
    print(job_line)
    for sample in idle.error_samples + busy.error_samples:
        print(f"error sample: {sample}")
    if sum(idle.errors.values()) + sum(busy.errors.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
