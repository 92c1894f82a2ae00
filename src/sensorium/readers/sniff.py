"""Guess a file's modality from its first bytes, so that a lying extension is caught with a clear
reason ("not an image (content looks like text)") instead of a decoder's cryptic error.
"""
from __future__ import annotations

from pathlib import Path

from ..modality import AUDIO, IMAGE, TEXT, VIDEO

_HEAD_BYTES = 4096

_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
)
_TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_AUDIO_MP4_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")


def sniff_bytes(head: bytes) -> str | None:
    """The modality the leading bytes of a file announce, or None when they are not recognised."""
    if not head:
        return None
    riff = head[8:12] if head[:4] in (b"RIFF", b"RIFX", b"RF64") else b""
    if riff == b"WEBP":
        return IMAGE
    if riff == b"WAVE":
        return AUDIO
    if riff == b"AVI ":
        return VIDEO
    if head.startswith(_TEXT_BOMS) and _looks_like_text(head):
        return TEXT
    if head.startswith(_IMAGE_MAGIC):
        return IMAGE
    if head.startswith((b"fLaC", b"OggS", b"ID3", b"FORM")) or _is_mpeg_audio_sync(head):
        return AUDIO
    if head[4:8] == b"ftyp":
        return AUDIO if head[8:12] in _AUDIO_MP4_BRANDS else VIDEO
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free") or head.startswith(b"\x1a\x45\xdf\xa3"):
        return VIDEO  # QuickTime atoms without ftyp; EBML (Matroska / WebM)
    if _looks_like_text(head):
        return TEXT
    return None


def sniff(path: str | Path) -> str | None:
    """Guess the modality of a file from its magic bytes (None: unknown, unreadable or empty)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return None
    return sniff_bytes(head)


def _is_mpeg_audio_sync(head: bytes) -> bool:
    """An MPEG audio frame header: 11 set sync bits, a valid version and a valid layer."""
    if len(head) < 4 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    return version != 0b01 and layer != 0 and bitrate != 0b1111


def _looks_like_text(head: bytes) -> bool:
    """True when the bytes decode (UTF-8/16 or a single-byte code page) to mostly printable text."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head[2 : len(head) & ~1].decode("utf-16-be" if head[0] == 0xFE else "utf-16-le", "replace")
    else:
        if b"\x00" in head:
            return False
        text = head.decode("utf-8", "ignore") if _is_utf8_prefix(head) else head.decode("cp1252", "replace")
    return is_mostly_printable(text)


def _is_utf8_prefix(head: bytes) -> bool:
    """Valid UTF-8, allowing a multi-byte character cut at the end of the sample."""
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"


def is_mostly_printable(text: str, max_control_ratio: float = 0.02) -> bool:
    """Text has almost no control characters other than whitespace; binary decoded as text does."""
    if not text:
        return False
    controls = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\n\r\f\v\x1b") or 0x7F <= ord(ch) < 0xA0
                   or ch == "\ufffd")
    return controls <= max_control_ratio * len(text)
