"""Person expert: finds people, whom ImageNet has no class for.

Two classic OpenCV detectors shipped inside the opencv-python 4.x wheel (no download): the HOG +
linear-SVM pedestrian detector (Dalal & Triggs) for standing full bodies, and the Viola-Jones Haar
frontal-face cascade for people facing the camera. Both run on one downscaled grey image; their
raw margins are mapped to [0, 1] so the image bridge can treat the best box as a person
probability. The image bridge adds evidence from clothing classes of the classifier (jersey,
suit, ...) for people neither detector sees (sitting, turned away, small).

Interface:
    PersonDetector().detect(pixels) -> [Box(x, y, w, h, score, kind), ...]   # kind "body" | "face"
    PersonDetector().info() -> ModelInfo
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import ModelInfo, package_version, sha256_of

FACE_CASCADE = "haarcascade_frontalface_default.xml"

# Raw margins at which a box counts as a person (score 0.5), and how steeply the score rises
# around it. Chosen on the 80 COCO-mini photos at max_side 320 (29 photos with a person covering
# over 1% of the picture, 44 with no person at all): HOG margin > 0.8 or Haar face stage sum > 4
# fires on 10/29 photos with people and 2/44 without, in ~150 ms. Lower cut-offs or a larger image
# find more people but more false ones too (480 px: 12/29 and 4/44 in ~390 ms); the Haar upper-body
# cascade added no person that the two others missed. Numbers: /tmp/bench_person.md.
BODY_MARGIN, BODY_SLOPE = 0.8, 3.0
FACE_MARGIN, FACE_SLOPE = 4.0, 1.0


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int
    score: float
    kind: str  # "body" (HOG) or "face" (Haar)

    @property
    def area(self) -> int:
        return self.w * self.h


def iou(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def non_max_suppression(boxes: list[Box], threshold: float = 0.3) -> list[Box]:
    """Keep the highest-scoring (then largest) box of each overlapping group.

    A box inside another (a face inside a body) is the same person, whichever scored higher,
    so that the bridge's person count stays honest.
    """
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: (-b.score, -b.area)):
        if all(iou(box, other) < threshold and not _inside(box, other) and not _inside(other, box)
               for other in kept):
            kept.append(box)
    return kept


def _inside(inner: Box, outer: Box) -> bool:
    return (inner.x >= outer.x and inner.y >= outer.y and inner.x + inner.w <= outer.x + outer.w
            and inner.y + inner.h <= outer.y + outer.h)


def _squash(margin: float, cut: float, slope: float) -> float:
    """Logistic map of a detector margin: `cut` -> 0.5, strong detections -> near 1."""
    return 1.0 / (1.0 + math.exp(-slope * (margin - cut)))


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise ModelError("opencv-python is not installed; pip install 'opencv-python>=4.10,<5'") from exc
    if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector") or not hasattr(cv2, "data"):
        raise ModelError(f"opencv-python {cv2.__version__} lacks the HOG people detector and the Haar "
                         "cascades (dropped in OpenCV 5); install 'opencv-python>=4.10,<5'")
    return cv2


def face_cascade_path() -> Path:
    return Path(_cv2().data.haarcascades) / FACE_CASCADE


class PersonDetector:
    """HOG full-body + Haar frontal-face detector; `max_side` bounds the cost (~150 ms at 320 px)."""

    def __init__(self, max_side: int = 320, min_score: float = 0.5, min_face: int = 16):
        self.max_side = max_side
        self.min_score = min_score
        self.min_face = min_face
        self._hog = None
        self._face = None

    def _load(self):
        if self._hog is None:
            cv2 = _cv2()
            hog = cv2.HOGDescriptor()
            hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
            face = cv2.CascadeClassifier(str(face_cascade_path()))
            if face.empty():
                raise ModelError(f"{face_cascade_path()}: cannot load the Haar face cascade")
            self._hog, self._face = hog, face
        return self._hog, self._face

    def info(self) -> ModelInfo:
        path = face_cascade_path()
        return ModelInfo(
            name="opencv-hog-haar", task="person detection", package="opencv-python",
            version=package_version("opencv-python"), file=str(path), sha256=sha256_of(path),
            licence="Apache-2.0 (OpenCV); Haar cascades: Intel License Agreement (BSD-style)",
            size_bytes=path.stat().st_size,
        )

    def detect(self, pixels: np.ndarray) -> list[Box]:
        if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {getattr(pixels, 'shape', None)}")
        hog, face = self._load()
        cv2 = _cv2()
        height, width = pixels.shape[:2]
        grey = cv2.cvtColor(np.ascontiguousarray(pixels, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        boxes: list[Box] = []
        if grey.shape[0] >= 128 and grey.shape[1] >= 64:  # the HOG window is 64x128
            rects, margins = hog.detectMultiScale(grey, winStride=(8, 8), padding=(8, 8), scale=1.05)
            for rect, margin in zip(rects, np.ravel(margins)):
                boxes.append(self._box(rect, scale, _squash(float(margin), BODY_MARGIN, BODY_SLOPE), "body"))
        if min(grey.shape) >= self.min_face:
            rects, _, weights = face.detectMultiScale3(
                grey, scaleFactor=1.1, minNeighbors=3, minSize=(self.min_face, self.min_face),
                outputRejectLevels=True,
            )
            for rect, weight in zip(rects, np.ravel(weights)):
                boxes.append(self._box(rect, scale, _squash(float(weight), FACE_MARGIN, FACE_SLOPE), "face"))
        return non_max_suppression([b for b in boxes if b.score >= self.min_score])

    @staticmethod
    def _box(rect, scale: float, score: float, kind: str) -> Box:
        x, y, w, h = (int(round(v / scale)) for v in rect)
        return Box(x, y, w, h, round(score, 4), kind)
