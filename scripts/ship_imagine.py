"""Rebuild the text-to-image MNIST model shipped in the package (src/sensorium/generation/data/imagine-mnist/).

Trains examples/imagine_mnist.toml (about 45 minutes on 2 cores; needs ../shared/data/mnist) into
RUN unless RUN already holds a finished run, then writes its moving-average weights in float16
(a few MB) beside their imagine.json. Run it after changing the network or its config format: the
test suite loads the shipped files into today's code and checks the pictures follow their prompt.

Usage: .venv/bin/python scripts/ship_imagine_mnist.py [--run runs/imagine-mnist]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from sensorium.diffusion import load_model, save_model
from sensorium.generation.imagine import SHIPPED
from sensorium.training.imagining import MODEL_DIR, train_imaginer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "imagine-mnist")
    args = parser.parse_args()
    started = time.perf_counter()
    if not (args.run / MODEL_DIR / "imagine.safetensors").is_file():
        resume = (args.run / "imagine-run.json").is_file()
        train_imaginer(ROOT / "examples" / "imagine_mnist.toml", args.run, resume=resume)
    model, digest = load_model(str((args.run / MODEL_DIR).resolve()), 0.0)
    path = save_model(model, SHIPPED["mnist"], dtype=torch.float16)
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"{path}: from run model {digest}, {size / 1e6:.2f} MB in float16, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
