"""Reading one object's attributes from its crop: shape, colour, size and material.

Why two small networks and not one: in condition A of the world (CLEVR-CoGenT), cubes and
cylinders come in disjoint colour sets, so one network that sees colour learns "this colour is a
cube" and on condition B (colours swapped) calls every cube a cylinder (0.000 on B, BENCHMARKS.md,
"Seeing objects on the world"). Shape is therefore read by a colour-blind network that sees each
crop's luminance, standardised per crop; colour, size and material by one that sees RGB.

Each crop is the object's box enlarged by a quarter, made square, resized to `side` pixels, with
four constant planes for the box's centre and size in the picture (so "large" can be told from
"near"). Training lives in `sensorium.training.world_reading`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..weights import SavedModel
from .files import VQA_HINT
from .vocabulary import COLOURS, MATERIALS, SHAPES, SIZES, VALUES, Attribute

STEM, FORMAT = "objects", "sensorium-world-objects/1"
SEEN_IN_COLOUR = {Attribute.COLOUR: COLOURS, Attribute.SIZE: SIZES, Attribute.MATERIAL: MATERIALS}
SEEN_WITHOUT_COLOUR = {Attribute.SHAPE: SHAPES}
BOX_PLANES = 4


@dataclass(frozen=True)
class PerceptionConfig:
    side: int = 32
    widths: tuple[int, ...] = (32, 64, 128)
    trained: dict = field(default_factory=dict)


def crop_object(picture: np.ndarray, box, side: int = 32) -> np.ndarray:
    """(3 + 4, side, side) uint8: the box enlarged by a quarter, square, resized; then its centre
    and size (as shares of the picture) as constant planes."""
    from PIL import Image

    height, width = picture.shape[:2]
    x0, y0, x1, y1 = box
    span = 1.25 * max(x1 - x0, y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    window = (cx - span / 2, cy - span / 2, cx + span / 2, cy + span / 2)
    # a window past the picture's edge (an object at the border, or a poor detector's huge box): pad the
    # picture with black so it fits (Pillow refuses such a box); windows inside are cut as they were
    margin = int(np.ceil(max(0.0, -window[0], -window[1], window[2] - width, window[3] - height)))
    if margin:
        picture = np.pad(picture, ((margin, margin), (margin, margin), (0, 0)))
        window = tuple(v + margin for v in window)
    pixels = np.asarray(Image.fromarray(picture).resize((side, side), Image.BILINEAR, box=window), dtype=np.uint8)
    planes = [np.full((side, side), round(255 * min(max(v, 0.0), 1.0)), dtype=np.uint8)
              for v in (cx / width, cy / height, (x1 - x0) / width, (y1 - y0) / height)]
    return np.concatenate([pixels.transpose(2, 0, 1), np.stack(planes)])


def colour_blind(crops: Tensor) -> Tensor:
    """(N, 7, S, S) float crops in [0, 1] -> (N, 5, S, S): luminance standardised per crop (no colour,
    no brightness), then the four box planes."""
    luminance = 0.299 * crops[:, 0] + 0.587 * crops[:, 1] + 0.114 * crops[:, 2]
    mean = luminance.mean(dim=(1, 2), keepdim=True)
    spread = luminance.std(dim=(1, 2), keepdim=True) + 1.0 / 255
    return torch.cat([((luminance - mean) / spread)[:, None] * 0.2, crops[:, 3:]], dim=1)


ATTRIBUTE_ORDER = tuple(a.value for a in (Attribute.SHAPE, Attribute.COLOUR, Attribute.SIZE, Attribute.MATERIAL))
PROBABILITIES = sum(len(VALUES[Attribute(name)]) for name in ATTRIBUTE_ORDER)  # 17: every value of every attribute


def attribute_blocks() -> tuple[tuple[str, tuple[str, ...], int, int], ...]:
    """(attribute, its values, first column, end column) in a row of `ObjectPerception.probabilities`."""
    blocks, start = [], 0
    for name in ATTRIBUTE_ORDER:
        values = tuple(VALUES[Attribute(name)])
        blocks.append((name, values, start, start + len(values)))
        start += len(values)
    return tuple(blocks)


ATTRIBUTE_BLOCKS = attribute_blocks()


def values_of(row: np.ndarray) -> dict[str, tuple[str, float]]:
    """One row of `ObjectPerception.probabilities` as {attribute: (most likely value, its probability)}."""
    read = {}
    for name, values, first, end in ATTRIBUTE_BLOCKS:
        index = int(row[first:end].argmax())
        read[name] = (values[index], round(float(row[first + index]), 4))
    return read


class CropNet(nn.Module):
    """A small CNN over a crop with one classification head per attribute."""

    def __init__(self, channels: int, heads: dict[Attribute, tuple[str, ...]], widths: tuple[int, ...]):
        super().__init__()
        layers, previous = [], channels
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.GroupNorm(8, width), nn.GELU(),
                       nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width), nn.GELU()]
            previous = width
        self.body = nn.Sequential(*layers)
        self.neck = nn.Sequential(nn.Linear(previous, previous), nn.GELU())
        self.heads = nn.ModuleDict({a.value: nn.Linear(previous, len(values)) for a, values in heads.items()})

    def forward(self, crops: Tensor) -> dict[str, Tensor]:
        features = self.neck(self.body(crops).mean(dim=(2, 3)))
        return {name: head(features) for name, head in self.heads.items()}


class ObjectPerception(SavedModel, nn.Module):
    stem, file_format, hint = STEM, FORMAT, VQA_HINT
    computes_loss = True  # the Trainer optimises forward(batch): the attributes' cross-entropies

    def __init__(self, config: PerceptionConfig | None = None):
        super().__init__()
        self.config = config or PerceptionConfig()
        self.in_colour = CropNet(3 + BOX_PLANES, SEEN_IN_COLOUR, self.config.widths)
        self.without_colour = CropNet(1 + BOX_PLANES, SEEN_WITHOUT_COLOUR, self.config.widths)

    def logits(self, crops: Tensor) -> dict[str, Tensor]:
        return {**self.in_colour(crops), **self.without_colour(colour_blind(crops))}

    def forward(self, batch: dict) -> Tensor:
        logits = self.logits(batch["crops"])
        return sum(F.cross_entropy(logits[name], batch["labels"][:, column])
                   for column, name in enumerate(ATTRIBUTE_ORDER))

    @torch.no_grad()
    def probabilities(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, 17) float32: each (7, S, S) uint8 crop's probability of every value, attribute by attribute
        in `ATTRIBUTE_ORDER` (5 shapes, 8 colours, 2 sizes, 2 materials)."""
        was_training = self.training
        self.eval()
        out = []
        try:
            for start in range(0, len(crops), batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(crops[start:start + batch_size])).float() / 255.0
                logits = self.logits(chunk)
                out.append(torch.cat([F.softmax(logits[name], dim=1) for name in ATTRIBUTE_ORDER], dim=1))
        finally:
            self.train(was_training)
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, PROBABILITIES), np.float32)

    def read(self, crops: np.ndarray, batch_size: int = 256) -> list[dict[str, tuple[str, float]]]:
        """Each (7, S, S) uint8 crop's attributes: {attribute: (value, probability)}."""
        return [values_of(row) for row in self.probabilities(crops, batch_size)]

    def read_found(self, images: list[np.ndarray], found: list[list]) -> list[np.ndarray]:
        """Each picture's (len(detections), 17) `probabilities`, its detections cropped and read in one
        batch: the one place where the answerer and the captioner cut crops."""
        side = self.config.side
        crops = [crop_object(np.asarray(picture, dtype=np.uint8), d.box, side)
                 for picture, detections in zip(images, found) for d in detections]
        rows = self.probabilities(np.stack(crops)) if crops else np.zeros((0, PROBABILITIES), np.float32)
        ends = np.cumsum([len(detections) for detections in found])
        return np.split(rows, ends[:-1]) if len(found) else []

    @classmethod
    def config_from(cls, record: dict) -> PerceptionConfig:
        record["widths"] = tuple(record["widths"])
        return PerceptionConfig(**record)


def attribute_labels(obj: dict) -> list[int]:
    """An annotated object's attribute indices in `ATTRIBUTE_ORDER` (training targets)."""
    return [VALUES[Attribute(name)].index(obj[name]) for name in ATTRIBUTE_ORDER]
