"""Indexing speed: end-to-end vs encoder-only time on 1,000 photos, re-indexing an unchanged
collection, and items/s per modality.

    .venv/bin/python -m benchmarks.speed.index_speed [--photos 1000] [--quick] [--no-trim] [--image-precision int8]
        [--workers N] [--ray]

`--workers N` reads and embeds in N local processes, `--ray` in Ray actors on a local Ray (N of
them, default one per core); one writer stores either way. Their start (spawning, loading the
experts) is inside the end-to-end time; the encoder-only pass runs in this process as before.

Encoder-only time is the image experts (EfficientNet + label bridge + people + OCR) run alone on
already decoded photos in the same batches; the rest of end-to-end time is decoding, hashing,
I/O and bookkeeping. `--no-trim` stops the indexer from handing freed heap memory back to the OS
after each batch (`sensorium.heap`), to measure what that costs in time.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common.photos import photo_folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 photos")
    parser.add_argument("--no-trim", action="store_true", help="keep freed heap memory (the old behaviour)")
    parser.add_argument("--workers", type=int, default=None, help="embed in N local processes (or N Ray actors)")
    parser.add_argument("--ray", action="store_true", help="embed in Ray actors on a local Ray")
    parser.add_argument("--image-precision", choices=("fp32", "int8"), default="fp32",
                        help="the image classifier's precision (ExpertConfig.image_precision)")
    args = parser.parse_args()
    if args.no_trim:
        from sensorium import heap

        heap.release_free_memory = lambda: False
    count = 200 if args.quick else args.photos

    from rich.console import Console
    from rich.table import Table

    from sensorium import Collection
    from sensorium.experts import ExpertConfig
    from sensorium.indexing import IMAGE_BATCH
    from sensorium.readers import read
    from sensorium.space.image_bridge import bridge_for

    console = Console()
    folder = photo_folder(count)
    files = sorted(folder.rglob("*.jpg"))
    workdir = Path(tempfile.mkdtemp(prefix="sensorium-bench-"))
    try:
        collection = Collection(workdir / "col", experts=ExpertConfig(image_precision=args.image_precision))
        bridge_for(collection.experts).describe([read(files[0]).pixels])  # load models outside the timing
        collection.experts.text.encode(["warm up"])

        began = time.perf_counter()
        report = collection.index(folder, workers=args.workers, ray=args.ray or None)
        end_to_end = time.perf_counter() - began
        assert not report.failed, report.failed[:3]

        pixels = [read(f).pixels for f in files]
        began = time.perf_counter()
        for start in range(0, len(pixels), IMAGE_BATCH):
            bridge_for(collection.experts).describe(pixels[start:start + IMAGE_BATCH])
        encoder_only = time.perf_counter() - began
        del pixels

        began = time.perf_counter()
        again = collection.index(folder)
        reindex = time.perf_counter() - began
        assert again.unchanged == count and again.added == 0

        trim = "not trimmed" if args.no_trim else "trimmed after each batch"
        where = ("Ray actors" if args.ray else "worker processes") if (args.ray or (args.workers or 1) > 1) else "one process"
        table = Table(title=f"indexing {count} photos (2-core CPU; heap {trim}; image expert {args.image_precision}; "
                            f"{where}{f' x {args.workers}' if args.workers else ''})")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("end-to-end indexing (s)", f"{end_to_end:.1f}")
        table.add_row("encoder-only (s)", f"{encoder_only:.1f}")
        table.add_row("encoder-only / end-to-end", f"{encoder_only / end_to_end:.3f}")
        table.add_row("photos/s end-to-end", f"{count / end_to_end:.1f}")
        table.add_row("decode time inside indexing, summed over threads (s)", f"{report.read_seconds:.1f}")
        table.add_row("re-index unchanged (s)", f"{reindex:.2f}")
        table.add_row("re-index / first index", f"{reindex / end_to_end:.4f}")
        console.print(table)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
