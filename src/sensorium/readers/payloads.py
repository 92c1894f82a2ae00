"""Typed payloads: what a reader hands to the encoders.

Readers decode and validate; everything downstream can trust these invariants:
- TextPayload.text is a non-empty str.
- ImagePayload.pixels is a C-contiguous uint8 array (H, W, 3), RGB, EXIF orientation applied.
- AudioPayload.samples is float32 mono in [-1, 1] at `sample_rate` (16 kHz by default),
  starting `offset` seconds into the file (0 unless it is a window of a long recording).
- VideoPayload.frames are sampled at a fixed rate, each with its time stamp in seconds;
  `audio` is the decoded sound track or None when the container has none.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class TextPayload:
    path: Path
    text: str
    encoding: str = "utf-8"
    modality: str = field(default="text", init=False)


@dataclass(frozen=True)
class ImagePayload:
    path: Path
    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    modality: str = field(default="image", init=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


@dataclass(frozen=True)
class AudioPayload:
    path: Path
    samples: np.ndarray  # (n,) float32 mono
    sample_rate: int = SAMPLE_RATE
    offset: float = 0.0  # seconds into the file where `samples` begin (a window of a long recording)
    modality: str = field(default="audio", init=False)

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)


@dataclass(frozen=True)
class VideoFrame:
    time: float  # seconds from the start
    pixels: np.ndarray  # (H, W, 3) uint8 RGB


@dataclass(frozen=True)
class VideoPayload:
    path: Path
    frames: list[VideoFrame]
    audio: AudioPayload | Iterable[AudioPayload] | None  # windows (readers.windows) when read for indexing
    duration: float
    frame_rate: float  # the fixed sampling rate of `frames`, frames per second
    modality: str = field(default="video", init=False)


Payload = TextPayload | ImagePayload | AudioPayload | VideoPayload
