"""What the shared space produces for one file: time-coded segments carrying vectors."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

SHARED = "shared"  # the text-anchored space every modality lands in (384-d, MiniLM)
IMAGE = "image"  # native EfficientNet features, for image -> image search
CLIP = "clip"  # a user's own CLIP checkpoint, when one is configured
AUDIO = "audio"  # native Whisper-encoder features, for recording -> recording search (any sound)
AUDIO_DIM = 512


class Source(StrEnum):
    """Which part of a file a segment comes from; stored in the catalog as its plain string."""

    TEXT = "text"  # a passage of a note
    IMAGE = "image"  # a photo, whole
    FRAME = "frame"  # a shot of a video (consecutive frames that look alike)
    SPEECH = "speech"  # a spoken sentence of a recording
    VIDEO_SPEECH = "video-speech"  # a spoken sentence of a video's sound track
    SOUND = "sound"  # a window of a recording's sound, words or not (native audio vector)
    VIDEO_SOUND = "video-sound"  # the same for a video's sound track


SPEECH_SOURCES = (Source.SPEECH, Source.VIDEO_SPEECH)
SOUND_SOURCES = (Source.SOUND, Source.VIDEO_SOUND)
PICTURE_SOURCES = (Source.IMAGE, Source.FRAME)


@dataclass
class Segment:
    """One searchable piece of an item: a photo, a note passage, a spoken sentence, a video shot."""

    source: Source
    text: str  # labels / transcript / passage: what lexical search and the `why` use
    start: float | None = None  # seconds; None for items without time (photos, notes)
    end: float | None = None
    labels: list = field(default_factory=list)  # e.g. [["tabby cat", 0.61], ...]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    ocr: str = ""  # text read in a photo or shot (searchable by words, shown on its own)
    words: list[tuple[float, float, str]] = field(default_factory=list)  # a spoken segment's (start, end, word)
