"""Realistic photo sets of any size for the speed and memory benchmarks.

Real COCO photos from ../shared/data/coco_mini when present (else scikit-image's bundled photos),
turned into as many distinct JPEGs as asked by random crops, flips, scales and JPEG qualities.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".benchmarks-cache"


def source_photos() -> list[Image.Image]:
    coco = SHARED / "coco_mini" / "images"
    if coco.is_dir():
        return [Image.open(p).convert("RGB") for p in sorted(coco.glob("*.jpg"))]
    from skimage import data

    return [Image.fromarray(getattr(data, n)()) for n in ("astronaut", "chelsea", "coffee", "rocket")]


def photo_folder(count: int, seed: int = 0, width: int = 640) -> Path:
    """A folder of `count` distinct JPEG photos (made once, then reused)."""
    folder = CACHE / f"photos-{count}-{width}-{seed}"
    marker = folder / ".complete"
    if marker.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = source_photos()
    for index in range(count):
        image = sources[index % len(sources)]
        w, h = image.size
        scale = rng.uniform(0.6, 1.0)
        cw, ch = int(w * scale), int(h * scale)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = image.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop = crop.resize((width, max(1, int(width * ch / cw))), Image.Resampling.BILINEAR)
        sub = folder / f"{index // 1000:03d}"
        sub.mkdir(exist_ok=True)
        crop.save(sub / f"photo_{index:06d}.jpg", quality=int(rng.integers(75, 95)))
    marker.touch()
    return folder
