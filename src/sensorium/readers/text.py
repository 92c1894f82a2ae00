"""Read a text file (.txt, .md, .markdown, .rst) whatever its encoding, or say why not.

Encodings: a BOM decides first (UTF-8/16/32), then strict UTF-8, then charset-normalizer's best
guess (latin-1, cp1252, ...). Decoded text that is mostly control characters is binary garbage
that happened to decode, and is refused rather than indexed as nonsense.
"""
from __future__ import annotations

import codecs
from pathlib import Path

from ..errors import ReadError
from .checks import check_file, decoding
from .limits import MAX_TEXT_BYTES
from .payloads import TextPayload
from .sniff import is_mostly_printable, sniff_bytes

_LATIN_LOOKALIKES = frozenset({
    "cp1250", "cp1257", "cp1258", "cp775", "cp850", "cp858", "cp437", "latin_1", "iso8859_2", "iso8859_3",
    "iso8859_4", "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "mac_roman",
    "mac_iceland", "mac_latin2",
})
_CHAOS_MARGIN = 0.15

_BOMS = (  # longest first: the UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_text(path: str | Path, *, max_bytes: int = MAX_TEXT_BYTES) -> TextPayload:
    """Decode a text file to str with universal newlines; ReadError when empty, binary or too big."""
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    path = Path(path)
    size = check_file(path)
    if size > max_bytes:
        raise ReadError(path, f"text file too large: {size / 1e6:.1f} MB exceeds the {max_bytes / 1e6:.1f} MB limit")
    with decoding(path, "reading text"):
        data = path.read_bytes()
    text, encoding = decode_bytes(path, data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ReadError(path, "empty text")
    return TextPayload(path=path, text=text, encoding=encoding)


def decode_bytes(path: str | Path, data: bytes) -> tuple[str, str]:
    """(text, encoding name) for a file's bytes; ReadError when they are not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(path, data, data.decode(encoding), encoding)
            except UnicodeDecodeError as exc:
                raise ReadError(path, f"not valid {encoding.upper()} text despite its byte-order mark ({exc.reason})") from exc
    if b"\x00" not in data:
        try:
            return _checked(path, data, data.decode("utf-8"), "utf-8")
        except UnicodeDecodeError:
            pass
    with decoding(path, "detecting text encoding"):
        from charset_normalizer import from_bytes

        matches = list(from_bytes(data))
    if not matches:
        raise ReadError(path, f"not valid UTF-8/undecodable text{_looks_like(data)}")
    encoding = _prefer_western(matches)
    return _checked(path, data, data.decode(encoding), encoding)


def _prefer_western(matches) -> str:
    """charset-normalizer's pick, except that cp1252 wins among look-alike Latin code pages.

    Short Western European texts decode cleanly in a dozen Latin code pages, and the detector
    often ranks Baltic or Central European ones first ("naïve" comes out as "naļve"); cp1252 (a
    superset of latin-1's printable range) is by far the likeliest of them in real files.
    """
    best = matches[0]
    if best.encoding not in _LATIN_LOOKALIKES:
        return best.encoding
    for match in matches:
        if match.chaos <= best.chaos + _CHAOS_MARGIN and "cp1252" in (match.encoding, *match.could_be_from_charset):
            return "cp1252"
    return best.encoding


def _checked(path: str | Path, data: bytes, text: str, encoding: str) -> tuple[str, str]:
    """Refuse decoded text that is binary in disguise (NULs and other control characters)."""
    sample = text[:65536]
    if sample.strip() and not is_mostly_printable(sample):
        raise ReadError(path, f"binary content, not text{_looks_like(data)}")
    return text, encoding


def _looks_like(data: bytes) -> str:
    """' (content looks like image)' when the bytes carry another modality's magic number."""
    looks_like = sniff_bytes(data[:4096])
    return f" (content looks like {looks_like})" if looks_like and looks_like != "text" else ""
