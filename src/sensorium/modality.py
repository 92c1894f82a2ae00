"""Modality names, spelled once, and how a file's name maps to its modality."""
from __future__ import annotations

from pathlib import Path

TEXT = "text"
IMAGE = "image"
AUDIO = "audio"
VIDEO = "video"

ALL = (TEXT, IMAGE, AUDIO, VIDEO)

EXTENSIONS: dict[str, str] = {
    ".txt": TEXT, ".md": TEXT, ".markdown": TEXT, ".rst": TEXT,
    ".jpg": IMAGE, ".jpeg": IMAGE, ".png": IMAGE, ".webp": IMAGE, ".bmp": IMAGE, ".gif": IMAGE,
    ".tif": IMAGE, ".tiff": IMAGE,
    ".wav": AUDIO, ".flac": AUDIO, ".ogg": AUDIO, ".oga": AUDIO, ".opus": AUDIO, ".mp3": AUDIO,
    ".m4a": AUDIO, ".aif": AUDIO, ".aiff": AUDIO, ".aifc": AUDIO,
    ".mp4": VIDEO, ".m4v": VIDEO, ".webm": VIDEO, ".mkv": VIDEO, ".avi": VIDEO, ".mov": VIDEO,
}


def modality_of(path: str | Path) -> str | None:
    """The modality a file's extension announces, or None when Sensorium does not read it."""
    return EXTENSIONS.get(Path(path).suffix.lower())
