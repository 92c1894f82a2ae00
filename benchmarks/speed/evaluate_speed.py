"""`sensorium evaluate` time with and without the noise sweep, on a small trained run.

    .venv/bin/python -m benchmarks.speed.evaluate_speed [--items 2000]

The two-modality bars task of tests/helpers/training.py (a 12x12 image + a 2-channel signal per
item, one file each), trained for 8 epochs, then evaluated in a new process as a user would:
scores only (the default since 2026-12-04), and with MultiBench's 11 noise levels (the default
before), which re-scores the set once per level and modality plus once per missing modality.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    args = parser.parse_args()
    from helpers.training import CONFIG, write_data

    with tempfile.TemporaryDirectory(prefix="evaluate-speed-") as temp:
        temp = Path(temp)
        manifest = write_data(temp / "data", args.items)
        (temp / "config.toml").write_text(CONFIG)
        cli = [sys.executable, "-m", "sensorium.cli"]
        subprocess.run([*cli, "train", str(temp / "config.toml"), "--out", str(temp / "run")], cwd=temp, check=True,
                       capture_output=True)
        rows = []
        for label, extra in (("scores only (default)", []),
                             ("with --noise 0,0.1,...,1.0 (the old default)", ["--noise", ",".join(f"{i / 10:g}" for i in range(11))])):
            began = time.perf_counter()
            subprocess.run([*cli, "evaluate", str(temp / "run"), "--data", str(manifest), "--json", *extra],
                           check=True, capture_output=True)
            rows.append((label, time.perf_counter() - began))
    print(f"| evaluate, {args.items} items, new process | seconds | items/s end to end |")
    print("|---|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} | {args.items / seconds:.0f} |")
    print(f"\nratio: {rows[1][1] / rows[0][1]:.1f}x less time without the sweep")


if __name__ == "__main__":
    main()
