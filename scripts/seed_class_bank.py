"""Rebuild the ImageNet class bank shipped in the package (src/sensorium/space/data/imagenet-class-bank.safetensors).

The bank holds the text-space vectors of the 1000 ImageNet classes, their hypernyms and the person
words under the default bridge's prompts: embedding them takes 1-2 min on 2 cores, the longest
wait of a first `sensorium demo`, index or classify. It is used only while its key matches the text
model, the prompts and the class names in use; run this after changing any of them (the test suite
says when the seed no longer matches).

Usage: .venv/bin/python scripts/seed_class_bank.py
"""
from __future__ import annotations

import time

from sensorium.experts.image import ImageExpert
from sensorium.experts.text import TextEncoder
from sensorium.space.image_bridge import DEFAULT_CONFIG
from sensorium.space.label_bridge import write_class_bank_seed


def main() -> None:
    start = time.perf_counter()
    path = write_class_bank_seed(TextEncoder(), ImageExpert().class_names, DEFAULT_CONFIG)
    print(f"{path}: {path.stat().st_size / 1024:.0f} KiB, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
