"""A new user's first run: `sensorium demo` from an empty Sensorium home, and what the class bank costs.

    .venv/bin/python -m benchmarks.speed.first_run [--skip-embed]

Every first index, classify or demo needs the ImageNet class bank (the text-space vectors of the
1000 classes under the bridge's prompts). The default bank ships with the package; this prints
what embedding it would cost instead (the text model over ~6,000 prompts, as before the seed and
as for any other text model or prompt set) beside loading the seed, then times `sensorium demo`
twice in a fresh empty home: the first run (models exported, media built, everything indexed)
and the second (nothing to re-index).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SENSORIUM = Path(sys.executable).with_name("sensorium")


def bank_costs() -> list[tuple[str, float]]:
    from sensorium.experts.image import ImageExpert
    from sensorium.experts.text import TextEncoder
    from sensorium.space.image_bridge import DEFAULT_CONFIG
    from sensorium.space.label_bridge import bank_key, embed_class_prompts, seeded_bank

    encoder, names = TextEncoder(), ImageExpert().class_names
    encoder.encode(["warm up the text model"])
    started = time.perf_counter()
    seed = seeded_bank(bank_key(encoder, names, DEFAULT_CONFIG))
    loaded = time.perf_counter() - started
    if seed is None:
        raise SystemExit("the shipped class bank does not match these models: run scripts/seed_class_bank.py")
    started = time.perf_counter()
    embed_class_prompts(encoder, names, DEFAULT_CONFIG)
    return [("class bank, shipped seed loaded", loaded), ("class bank, embedded by the text model", time.perf_counter() - started)]


def demo_runs() -> list[tuple[str, float, str]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="sensorium-first-run-") as folder:
        env = {**os.environ, "SENSORIUM_HOME": str(Path(folder) / "home"), "COLUMNS": "200"}
        for run in ("first run in an empty home", "second run, the same home"):
            started = time.perf_counter()
            done = subprocess.run([str(SENSORIUM), "demo", "--dir", str(Path(folder) / "demo")], env=env,
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"sensorium demo failed:\n{done.stderr[-2000:]}")
            report = re.search(r"\d+ added, \d+ updated, \d+ unchanged[^\n]*", done.stdout)
            out.append((f"`sensorium demo`, {run}", seconds, report.group(0) if report else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-embed", action="store_true", help="only the demo runs, not the bank's embedding cost")
    args = parser.parse_args(argv)
    print("| what | seconds | index report |\n|---|---:|---|")
    if not args.skip_embed:
        for name, seconds in bank_costs():
            print(f"| {name} | {seconds:.3f} | |")
    for name, seconds, report in demo_runs():
        print(f"| {name} | {seconds:.1f} | {report} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
