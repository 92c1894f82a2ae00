"""Peak memory while indexing many photos, and whether it grows with the collection.

    .venv/bin/python -m benchmarks.speed.index_memory [--photos 10000] [--no-ocr] [--shard-mib M] [--no-trim]

Samples the process's resident set size (VmRSS) every 0.5 s while `Collection.index` runs and
prints it at each tenth of the run, then the peak (VmHWM). Memory that does not grow with the
collection shows as a flat line after the models have loaded.

`--shard-mib` sets the ANN shard size (default 128 MiB, which 10,000 photos do not fill): a small
value shows, within a short run, where the line goes flat once each space's first shard is full.

`--no-trim` stops the indexer from handing freed heap memory back to the OS after each batch
(`sensorium.heap.release_free_memory`), to measure what that does.

The growth figure is a least-squares line through every sample of the second half of the run
(KB per photo), so a single sample caught in the middle of a batch does not decide it.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common.photos import photo_folder


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def growth_kb_per_photo(samples: list[tuple[int, float]], photos: int) -> float:
    """Slope of RSS against photos done, fitted to the samples of the run's second half."""
    import numpy as np

    late = np.array([(done, rss) for done, rss in samples if done >= photos // 2], dtype=float)
    if len(late) < 2 or np.ptp(late[:, 0]) == 0:
        return float("nan")
    return float(np.polyfit(late[:, 0], late[:, 1], 1)[0] * 1024)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--no-ocr", action="store_true")
    parser.add_argument("--shard-mib", type=float, help="ANN shard size in MiB (default: the store's)")
    parser.add_argument("--no-trim", action="store_true", help="keep freed heap memory (the old behaviour)")
    args = parser.parse_args()
    if args.no_trim:
        from sensorium import heap

        heap.release_free_memory = lambda: False
    if args.shard_mib:
        from sensorium.index import vectors

        vectors.SHARD_BYTES = int(args.shard_mib * 2**20)

    from sensorium import Collection
    from sensorium.experts import ExpertConfig

    folder = photo_folder(args.photos)
    workdir = Path(tempfile.mkdtemp(prefix="sensorium-mem-"))
    samples: list[tuple[int, float]] = []
    progress = {"done": 0}
    stop = threading.Event()

    step = max(1, args.photos // 10)

    def sample() -> None:
        # also print as it goes: a multi-hour run that is stopped early still leaves its curve
        shown: set[int] = set()
        while not stop.wait(0.5):
            done, rss = progress["done"], rss_mb()
            samples.append((done, rss))
            if done // step not in shown:
                shown.add(done // step)
                print(f"  [{time.perf_counter() - began:7.0f} s] {done:6d} photos, RSS {rss:6.0f} MB, "
                      f"peak {rss_mb('VmHWM'):6.0f} MB", flush=True)

    def on_progress(done: int, total: int, path: str) -> None:
        progress["done"] = done

    try:
        collection = Collection(workdir / "col", experts=ExpertConfig(ocr=not args.no_ocr))
        began = time.perf_counter()
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        report = collection.index(folder, progress=on_progress)
        seconds = time.perf_counter() - began
        stop.set()
        thread.join()
        print(f"indexed {report.added} photos in {seconds:.0f} s ({report.added / seconds:.2f}/s), "
              f"{len(report.failed)} failed; OCR {'off' if args.no_ocr else 'on'}; "
              f"ANN files {len(list((workdir / 'col' / 'vectors').glob('*.usearch')))}")
        print("photos done | RSS MB")
        shown = set()
        for done, rss in samples:
            bucket = done // step
            if bucket not in shown:
                shown.add(bucket)
                print(f"{done:11d} | {rss:7.0f}")
        print(f"peak RSS (VmHWM): {rss_mb('VmHWM'):.0f} MB; growth over the second half "
              f"{growth_kb_per_photo(samples, args.photos):+.2f} KB/photo (least squares); "
              f"heap trimmed after each batch: {'no' if args.no_trim else 'yes'}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
