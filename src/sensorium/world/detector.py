"""Finding the world's objects in a picture: a small CenterNet-style detector (Zhou et al. 2019,
"Objects as Points").

Why this design: world objects are compact blobs 10-40 px wide that often touch or hide each other,
and answering "how many" needs one detection per object, not a pile of overlapping boxes. A fully
convolutional net predicts, on a grid one quarter of the picture's size, a heatmap of object
centres, each box's width and height and the centre's sub-cell offset; detections are the heatmap's
local maxima above a threshold, so no non-maximum suppression is needed. Two coordinate planes
join the picture because where an object is decides its size on screen (the camera is fixed).
Training lives in `sensorium.training.world_reading`; this module is all detection needs at run time.

    detector = ObjectDetector(DetectorConfig())
    detector.detect([pixels])      # [[Detection(box=(x0, y0, x1, y1), score=0.97), ...]]
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..weights import SavedModel
from .files import VQA_HINT
from .pixels import pictures_tensor

STEM, FORMAT = "detector", "sensorium-world-detector/1"
SIZE_WEIGHT = 5.0  # of the box size and offset loss against the centre heatmap's focal loss


@dataclass(frozen=True)
class DetectorConfig:
    image_size: int = 128
    stride: int = 4  # heatmap cells are stride x stride pixels
    width: int = 64  # channels at stride 4
    threshold: float = 0.3  # least centre score of a detection
    trained: dict = field(default_factory=dict)  # what it was trained on, for the record

    def __post_init__(self):
        if self.image_size % self.stride:
            raise ConfigError(f"detector: stride {self.stride} must divide image_size {self.image_size}")
        if self.width % 8:
            raise ConfigError(f"detector: width {self.width} must be a multiple of 8 (group norm)")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"detector: threshold {self.threshold} is outside (0, 1)")

    @property
    def grid(self) -> int:
        return self.image_size // self.stride


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the picture's pixels
    score: float  # the centre heatmap's value, 0-1


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _block(a: int, b: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(a, b, 3, stride=stride, padding=dilation, dilation=dilation), nn.GroupNorm(8, b), nn.ReLU()]


def box_targets(boxes, config: DetectorConfig) -> tuple[Tensor, Tensor, Tensor]:
    """One picture's training targets from its annotated boxes: the centre heatmap (grid, grid)
    with a Gaussian per object (1 at its centre cell), the size and offset (4, grid, grid) at each
    centre cell, and the mask of centre cells (grid, grid)."""
    grid, stride, size = config.grid, config.stride, config.image_size
    heat = torch.zeros(grid, grid)
    regress = torch.zeros(4, grid, grid)
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    ys, xs = torch.meshgrid(torch.arange(grid).float(), torch.arange(grid).float(), indexing="ij")
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
        sigma = max(0.6, max(x1 - x0, y1 - y0) / stride / 6)
        heat = torch.maximum(heat, torch.exp(-((xs - cx + 0.5) ** 2 + (ys - cy + 0.5) ** 2) / (2 * sigma ** 2)))
        col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
        heat[row, col] = 1.0
        regress[:, row, col] = torch.tensor([(x1 - x0) / size, (y1 - y0) / size, cx - col, cy - row])
        mask[row, col] = True
    return heat, regress, mask


class ObjectDetector(SavedModel, nn.Module):
    stem, file_format, hint = STEM, FORMAT, VQA_HINT
    computes_loss = True  # the Trainer optimises forward(batch): focal loss on centres + L1 on sizes

    def __init__(self, config: DetectorConfig | None = None):
        super().__init__()
        self.config = config or DetectorConfig()
        if self.config.stride != 4:
            raise ConfigError(f"detector: stride {self.config.stride}; this network predicts at stride 4")
        # The first convolution already halves the picture: at full size even 32 channels made a step
        # cost 3x more, and objects are at least 10 px wide. Dilated convolutions at stride 4 give
        # each cell a view of ~90 px, enough for the largest objects' sizes.
        width = self.config.width
        self.body = nn.Sequential(*_block(5, 16, 2), *_block(16, 32), *_block(32, width, 2), *_block(width, width),
                                  *_block(width, width, dilation=2), *_block(width, width, dilation=4))
        self.head = nn.Conv2d(width, 5, 1)  # centre logit, width, height, offset x, offset y
        nn.init.constant_(self.head.bias[:1], -2.2)  # start near the prior of "no object here"

    def raw(self, pictures: Tensor) -> Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, 5, grid, grid): centre logits, then box size and offset."""
        batch, _, size, _ = pictures.shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        planes = [xs.expand(batch, 1, -1, -1), ys.expand(batch, 1, -1, -1)]
        return self.head(self.body(torch.cat([pictures, *planes], dim=1)))

    def forward(self, batch: dict) -> Tensor:
        out = self.raw(batch["pictures"])
        heat, regress, mask = batch["heat"], batch["regress"], batch["mask"]
        p = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
        positive = heat == 1
        focal = torch.where(positive, (1 - p) ** 2 * torch.log(p), (1 - heat) ** 4 * p ** 2 * torch.log(1 - p))
        centres = positive.sum().clamp(min=1)
        size = (out[:, 1:5] - regress).abs().permute(0, 2, 3, 1)[mask].sum() / centres
        return -focal.sum() / centres + SIZE_WEIGHT * size

    @torch.no_grad()
    def detect(self, images: list[np.ndarray], threshold: float | None = None,
               batch_size: int = 64) -> list[list[Detection]]:
        """Each picture's objects, boxes in that picture's own pixels, in reading order (top to bottom)."""
        threshold = self.config.threshold if threshold is None else threshold
        size, stride = self.config.image_size, self.config.stride
        was_training = self.training
        self.eval()
        found: list[list[Detection]] = []
        try:
            for start in range(0, len(images), batch_size):
                chunk = images[start:start + batch_size]
                out = self.raw(pictures_tensor(chunk, size))
                heat = torch.sigmoid(out[:, 0])
                peaks = (heat == F.max_pool2d(heat[:, None], 3, 1, 1)[:, 0]) & (heat > threshold)
                for i, picture in enumerate(chunk):
                    scale_x, scale_y = picture.shape[1] / size, picture.shape[0] / size
                    scene = []
                    for row, col in peaks[i].nonzero().tolist():
                        w, h, ox, oy = out[i, 1:5, row, col].tolist()
                        cx, cy, w, h = (col + ox) * stride, (row + oy) * stride, w * size, h * size
                        box = ((cx - w / 2) * scale_x, (cy - h / 2) * scale_y, (cx + w / 2) * scale_x,
                               (cy + h / 2) * scale_y)
                        scene.append(Detection(tuple(round(v, 2) for v in box), round(float(heat[i, row, col]), 4)))
                    found.append(scene)
        finally:
            self.train(was_training)
        return found

    @classmethod
    def config_from(cls, record: dict) -> DetectorConfig:
        return DetectorConfig(**record)
