"""Reliability diagrams drawn with Pillow (no plotting library in the dependencies).

Each panel shows, per confidence bin, the accuracy as a bar against the diagonal of perfect
calibration; the gap is what ECE averages. Panels side by side: typically before and after.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .calibration import BINS, ece, reliability

SIZE = 360
MARGIN = 44
BAR = (76, 114, 176)
GAP = (221, 132, 82)
INK = (40, 40, 40)


def _panel(draw: ImageDraw.ImageDraw, left: int, title: str, probs: np.ndarray, truth: np.ndarray) -> None:
    plot = SIZE - 2 * MARGIN
    x0, y0 = left + MARGIN, MARGIN
    mean_conf, accuracy, count = reliability(probs, truth, BINS)
    width = plot / BINS
    for b in range(BINS):
        if not count[b]:
            continue
        top = y0 + plot * (1 - accuracy[b])
        draw.rectangle([x0 + b * width + 1, top, x0 + (b + 1) * width - 1, y0 + plot], fill=BAR)
        expected = y0 + plot * (1 - mean_conf[b])
        draw.rectangle([x0 + b * width + 1, min(top, expected), x0 + (b + 1) * width - 1, max(top, expected)],
                       outline=GAP, width=2)
    draw.line([x0, y0 + plot, x0 + plot, y0], fill=INK, width=1)
    draw.rectangle([x0, y0, x0 + plot, y0 + plot], outline=INK)
    for tick in (0.0, 0.5, 1.0):
        draw.text((x0 + plot * tick - 8, y0 + plot + 6), f"{tick:.1f}", fill=INK)
        draw.text((x0 - 30, y0 + plot * (1 - tick) - 6), f"{tick:.1f}", fill=INK)
    draw.text((x0, 10), f"{title}  ECE {ece(probs, truth):.3f}", fill=INK)
    draw.text((x0 + plot / 2 - 30, SIZE - 20), "confidence", fill=INK)


def reliability_diagram(path: str | Path, panels: list[tuple[str, np.ndarray, np.ndarray]]) -> Path:
    """Write a PNG with one panel per (title, probabilities, truth)."""
    image = Image.new("RGB", (SIZE * len(panels), SIZE), "white")
    draw = ImageDraw.Draw(image)
    for number, (title, probs, truth) in enumerate(panels):
        _panel(draw, number * SIZE, title, np.asarray(probs), np.asarray(truth))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
