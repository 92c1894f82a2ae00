"""Rebuild a text-to-image model shipped in the package (src/sensorium/generation/data/imagine-NAME/).

Trains examples/imagine_NAME.toml into RUN unless RUN already holds a finished run (MNIST: about
45 minutes on 2 cores, needs ../shared/data/mnist; Fashion-MNIST: about 35 minutes, needs
`make bench-data`), then writes its moving-average weights in int8 with a scale per output
channel (about 1.4 MB) beside their imagine.json. Run it after changing the network or its config
format: the test suite loads the shipped files into today's code and checks the pictures follow
their prompt.

Usage: .venv/bin/python scripts/ship_imagine.py mnist|fashion [--run runs/imagine-NAME]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sensorium.diffusion import load_model, save_model
from sensorium.generation.imagine import SHIPPED
from sensorium.training.imagining import MODEL_DIR, train_imaginer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(SHIPPED))
    parser.add_argument("--run", type=Path, default=None, help="default: runs/imagine-NAME")
    args = parser.parse_args()
    run = args.run or ROOT / "runs" / f"imagine-{args.name}"
    started = time.perf_counter()
    if not (run / MODEL_DIR / "imagine.safetensors").is_file():
        resume = (run / "imagine-run.json").is_file()
        train_imaginer(ROOT / "examples" / f"imagine_{args.name}.toml", run, resume=resume)
    model, digest = load_model(str((run / MODEL_DIR).resolve()), 0.0)
    data = model.config.trained.get("data")
    if data:  # the record travels with the package: the data's name, not this machine's path to it
        model.config.trained["data"] = Path(data).name
    path = save_model(model, SHIPPED[args.name], precision="int8")
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"{path}: from run model {digest}, {size / 1e6:.2f} MB in int8, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
