"""What the shared space produces for one file: time-coded segments carrying vectors."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SHARED = "shared"  # the text-anchored space every modality lands in (384-d, MiniLM)
IMAGE = "image"  # native EfficientNet features, for image -> image search
CLIP = "clip"  # a user's own CLIP checkpoint, when one is configured
AUDIO = "audio"  # native Whisper-encoder features, for recording -> recording search (any sound)
AUDIO_DIM = 512


@dataclass
class Segment:
    """One searchable piece of an item: a photo, a note passage, a spoken sentence, a video shot."""

    source: str  # "text", "image", "speech", "frame", "video-speech", "sound", "video-sound"
    text: str  # labels / transcript / OCR / passage: what lexical search and the `why` use
    start: float | None = None  # seconds; None for items without time (photos, notes)
    end: float | None = None
    labels: list = field(default_factory=list)  # e.g. [["tabby cat", 0.61], ...]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
