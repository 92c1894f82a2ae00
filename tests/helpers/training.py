"""Two-class picture + signal data and a config for `sensorium train` (bars across or up, a rising or falling signal)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CONFIG = """
[data]
train = "data/train.csv"
val_fraction = 0.25
label = "shape"
[data.modalities.image]
kind = "image"
size = 12
channels = 1
[data.modalities.signal]
kind = "array"
[model.encoders.image]
name = "image_cnn"
in_channels = 1
dim = 8
widths = [8]
[model.encoders.signal]
name = "series_cnn"
in_channels = 2
dim = 8
depth = 1
[model.fusion]
method = "late"
output_dim = 8
[train]
epochs = 8
batch_size = 4
lr = 0.01
warmup_steps = 1
threads = 1
progress = false
"""


def write_data(folder: Path, count: int) -> Path:
    """Bars (vertical = "up", horizontal = "across") as PNGs, with a 2-channel signal rising or falling."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    rows = []
    for i in range(count):
        label = i % 2
        pixels = rng.integers(0, 30, (12, 12)).astype(np.uint8)
        at = rng.integers(2, 10)
        if label == 0:
            pixels[:, at - 1:at + 1] = 220
        else:
            pixels[at - 1:at + 1, :] = 220
        Image.fromarray(pixels).save(folder / f"{i}.png")
        ramp = np.linspace(-1, 1, 16, dtype=np.float32) * (1 if label == 0 else -1)
        signal = np.stack([ramp, -ramp], axis=1) + 0.1 * rng.standard_normal((16, 2)).astype(np.float32)
        np.save(folder / f"{i}.npy", signal.astype(np.float32))
        rows.append({"image": f"{i}.png", "signal": f"{i}.npy", "shape": ("up", "across")[label]})
    manifest = folder / "train.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "signal", "shape"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
