"""Training speed with every core (`train.threads = 0`, the default) against only the idle ones (-1),
on a quiet machine and on one kept busy by another process.

    .venv/bin/python -m benchmarks.speed.train_threads [--items 2000] [--epochs 3]

The two-modality bars task of tests/helpers/training.py (small model, one file per item), trained
by `sensorium train` in a new process; "busy" runs one CPU-bound process beside it per core but
one (a spinning Python loop), as another job on a shared machine would.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def train(temp: Path, manifest_dir: Path, threads: int, epochs: int) -> float:
    from helpers.training import CONFIG

    config = CONFIG.replace("threads = 1", f"threads = {threads}").replace("epochs = 8", f"epochs = {epochs}")
    config = config.replace('train = "data/train.csv"', f'train = "{manifest_dir / "train.csv"}"')
    (temp / "config.toml").write_text(config)
    out = temp / f"run-{threads}-{time.time_ns()}"
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sensorium.cli", "train", str(temp / "config.toml"), "--out", str(out)],
                   check=True, capture_output=True, cwd=temp)
    seconds = time.perf_counter() - began
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return seconds, sum(r["samples_per_s"] for r in records) / len(records), records[0]["threads"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from helpers.training import write_data

    cores = len(os.sched_getaffinity(0))
    rows = []
    with tempfile.TemporaryDirectory(prefix="train-threads-") as temp:
        temp = Path(temp)
        write_data(temp / "data", args.items)
        for machine in ("quiet", "busy"):
            stop = multiprocessing.Event()
            burners = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(max(1, cores - 1))] \
                if machine == "busy" else []
            for burner in burners:
                burner.start()
            time.sleep(2 if burners else 0)
            try:
                for threads, label in ((0, "0: every core (default)"), (-1, "-1: the idle cores")):
                    seconds, rate, used = train(temp, temp / "data", threads, args.epochs)
                    rows.append((machine, label, used, seconds, rate))
            finally:
                stop.set()
                for burner in burners:
                    burner.join()
    print(f"| machine ({cores} cores) | train.threads | threads used | seconds, new process | samples/s (mean of epochs) |")
    print("|---|---|---:|---:|---:|")
    for machine, label, used, seconds, rate in rows:
        print(f"| {machine} | {label} | {used} | {seconds:.1f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
