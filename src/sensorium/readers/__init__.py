"""Readers: decode and validate one file into a typed payload, or raise ReadError saying why.

`read(path)` picks the reader from the file's extension; each reader also checks the content's
magic bytes (`sniff`), so that a text file named .jpg fails with a clear reason while a PNG named
.jpg simply reads.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import ReadError, UnsupportedFileError
from ..modality import AUDIO, IMAGE, TEXT, VIDEO, modality_of
from .audio import read_audio
from .image import read_image
from .payloads import AudioPayload, ImagePayload, Payload, TextPayload, VideoFrame, VideoPayload
from .sniff import sniff
from .text import read_text
from .video import read_video
from .windows import AudioWindows

READERS = {TEXT: read_text, IMAGE: read_image, AUDIO: read_audio, VIDEO: read_video}

__all__ = [
    "read", "read_for_index", "AudioWindows", "sniff", "read_text", "read_image", "read_audio", "read_video", "READERS",
    "Payload", "TextPayload", "ImagePayload", "AudioPayload", "VideoFrame", "VideoPayload",
    "ReadError", "UnsupportedFileError",
]


def read(path: str | Path, **opts) -> Payload:
    """Decode a file with the reader its extension names; options go to that reader."""
    modality = modality_of(path)
    if modality is None:
        suffix = Path(path).suffix.lower() or "(no extension)"
        raise UnsupportedFileError(path, f"unsupported file type {suffix}")
    return READERS[modality](path, **opts)


def read_for_index(path: str | Path) -> Payload | AudioWindows:
    """What indexing reads: as `read`, except that a recording, and a video's sound track, come as
    `AudioWindows`, decoded while the experts work through them, so that a file's length never
    decides the memory an index run needs. A video whose sound cannot be read keeps its pictures."""
    modality = modality_of(path)
    if modality == AUDIO:
        return AudioWindows(path)
    if modality == VIDEO:
        payload = read_video(path, audio=False)
        try:
            sound = AudioWindows(path)
        except ReadError:  # no sound track, or one that cannot be decoded
            sound = None
        return replace(payload, audio=sound)
    return read(path)
