"""Fashion-MNIST zero-shot classification through the image bridge (text prompts only).

    .venv/bin/python -m benchmarks.quality.fashion_mnist_zeroshot [--quick] [--data DIR]

Each test image (28x28 grey, white garment on black) goes through EfficientNet-Lite0 and the label
bridge into the text space; its class is the prompt embedding it is closest to. Nothing is
trained; chance is 10%. --quick uses the first 1,000 test images, the full run all 10,000.
Data: Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist/, MIT).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sensorium.experts.image import ImageExpert
from sensorium.experts.text import TextEncoder
from sensorium.training.sources import read_idx
from sensorium.space.image_bridge import DEFAULT_CONFIG
from sensorium.space.label_bridge import TEMPLATES, LabelBridge

ROOT = Path(__file__).resolve().parents[2]

DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# What a person would call each class in a caption (the prompt text; the label names stay official).
PROMPT_NAMES = ["t-shirt", "trousers", "pullover sweater", "dress", "coat", "sandal", "shirt", "sneaker",
                "bag", "ankle boot"]


def to_photo(image: np.ndarray) -> np.ndarray:
    """28x28 white-on-black -> RGB dark-on-white, like a catalogue photo the classifier knows."""
    return np.repeat((255 - image)[:, :, None], 3, axis=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="first 1,000 test images")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--invert", choices=["yes", "no"], default="yes", help="show garments dark on white")
    args = parser.parse_args(argv)
    images_file = args.data / "t10k-images-idx3-ubyte.gz"
    if not images_file.is_file():
        print(f"skipped: Fashion-MNIST not found at {args.data} (apt-get install dataset-fashion-mnist)")
        return 0
    images = read_idx(images_file)
    labels = read_idx(args.data / "t10k-labels-idx1-ubyte.gz").astype(int)
    limit = args.limit or (1000 if args.quick else len(images))
    images, labels = images[:limit], labels[:limit]

    expert, encoder = ImageExpert(batch_size=64), TextEncoder()
    bridge = LabelBridge(encoder, expert.class_names, DEFAULT_CONFIG)
    prompts = np.stack([
        bridge.embed_query([t.format(name) for t in TEMPLATES]).mean(axis=0) for name in PROMPT_NAMES
    ])
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)

    convert = to_photo if args.invert == "yes" else (lambda im: np.repeat(im[:, :, None], 3, axis=2))
    started = time.perf_counter()
    predictions = []
    for start in range(0, limit, 256):
        batch = [convert(im) for im in images[start:start + 256]]
        probs = expert.run(batch).probs
        vectors = np.stack([bridge.embed(p) for p in probs])
        predictions.append(np.argmax(vectors @ prompts.T, axis=1))
    predictions = np.concatenate(predictions)
    seconds = time.perf_counter() - started

    accuracy = float((predictions == labels).mean())
    print(f"Fashion-MNIST zero-shot, {limit} test images, {limit / seconds:.1f} images/s")
    print(f"accuracy: {accuracy:.3f} (chance 0.100)")
    print("| class | n | accuracy | most often predicted as |")
    print("|---|---|---|---|")
    for c, name in enumerate(CLASSES):
        mask = labels == c
        if not mask.any():
            continue
        counts = np.bincount(predictions[mask], minlength=10)
        print(f"| {name} | {int(mask.sum())} | {float((predictions[mask] == c).mean()):.3f} | {CLASSES[int(counts.argmax())]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
