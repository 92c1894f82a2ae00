"""Read a still image (JPEG, PNG, WebP, BMP, GIF first frame, TIFF) to RGB uint8, or say why not.

Pillow decodes by content, so a PNG named .jpg reads fine. Its decompression-bomb guard stays on
and is stricter here: anything over the pixel limit fails (Pillow only warns up to twice the
limit). Truncated files fail too: LOAD_TRUNCATED_IMAGES is never set, and `load()` runs inside
the error guard. With `max_side`, JPEGs decode at reduced scale (`draft`) so that a folder of
large photos decodes quickly.
"""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import ReadError
from .checks import check_file, describe
from .limits import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE
from .payloads import ImagePayload
from .sniff import sniff

_WHITE = (255, 255, 255)
IN_MEMORY_BYTES = 64 * 1024 * 1024  # files up to this size are decoded from a buffer (`_source`)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def read_image(
    path: str | Path, *, max_side: int | None = None, max_pixels: int | None = None
) -> ImagePayload:
    """Decode an image to (H, W, 3) uint8 RGB with EXIF orientation applied.

    max_side: downscale (keeping aspect) so that the longest side is at most this many pixels.
    max_pixels: refuse images with more pixels than this (default: `limits.MAX_IMAGE_PIXELS`, or
    Pillow's Image.MAX_IMAGE_PIXELS where that is lower); a JPEG over it is decoded at reduced scale.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive int or None, got {max_side}")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels}")
    limit = min(MAX_IMAGE_PIXELS, Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS) if max_pixels is None else max_pixels
    # Pillow only warns between its own limit and twice it: our own check (`_decode`, from the header)
    # decides there, since a JPEG that large can still be decoded at reduced scale. Pillow's hard
    # error at twice its limit still applies.
    bomb_warning = "ignore"
    path = Path(path)
    size = check_file(path)
    looks_like = sniff(path)
    if looks_like is not None and looks_like != "image":
        raise ReadError(path, f"not an image (content looks like {looks_like})")
    fmt = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(bomb_warning, Image.DecompressionBombWarning)
            with Image.open(_source(path, size)) as img:
                fmt = img.format
                rgb = _decode(path, img, max_side, limit)
    except (ReadError, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{declared.group(1)} pixels" if declared else "image"
        raise ReadError(path, f"decompression bomb: {size} exceeds limit of {limit} pixels") from exc
    except Image.UnidentifiedImageError as exc:
        raise ReadError(path, "not a recognised image format") from exc
    except Exception as exc:
        name = f"{fmt} " if fmt else ""
        raise ReadError(path, f"not a valid {name}image ({_short_reason(exc)})") from exc
    return ImagePayload(path=path, pixels=rgb)


def _source(path: Path, size: int):
    """The file's bytes in memory when it is small (nearly every photo), else the path.

    Why: Pillow's PNG plugin reads what a chunk header declares with one `read(n)`, and a file
    object allocates n bytes up front, so a 137-byte PNG can ask for 4 GB; an in-memory buffer
    returns only what is there."""
    if size <= IN_MEMORY_BYTES:
        return io.BytesIO(path.read_bytes())
    return path


def _decode(path: Path, img: Image.Image, max_side: int | None, limit: int | None) -> np.ndarray:
    width, height = img.size
    if width < 1 or height < 1:
        raise ReadError(path, f"image has no pixels ({width}x{height})")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ReadError(path, f"image is {width}x{height}: a side over {MAX_IMAGE_SIDE:,} pixels is not supported")
    if limit is not None and width * height > limit:
        if img.format == "JPEG" and width * height <= limit * 64:  # DCT scaling down to 1/8 per side
            reduce = next(k for k in (2, 4, 8) if (width / k) * (height / k) <= limit)
            img.draft("RGB", (-(-width // reduce), -(-height // reduce)))
            width, height = img.size
        if width * height > limit:
            raise ReadError(path, f"decompression bomb: {width}x{height} pixels exceeds limit of {limit} pixels")
    if max_side is not None and img.format == "JPEG" and max(width, height) > max_side:
        # DCT scaling: decode at 1/2, 1/4 or 1/8 size, never below the final thumbnail's size.
        scale = max_side / max(width, height)
        img.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
    img.load()
    img = _upright(img)
    img = to_rgb(img)
    if max_side is not None and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    pixels = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ReadError(path, f"unexpected pixel layout {pixels.shape} after conversion to RGB")
    return pixels


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a corrupt EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(img)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception:
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: transparency composited on white, 16-bit scaled down."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        values = np.asarray(img, dtype=np.float64)
        if mode == "F" and values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        elif mode != "F" and (mode in _SIXTEEN_BIT_MODES or (values.size and values.max() > 255)):
            values = values / 257.0
        gray = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), "RGB")
    return img.convert("RGB")  # 1, L, CMYK, YCbCr, LAB, HSV


def _short_reason(exc: BaseException) -> str:
    text = describe(exc)
    lowered = text.lower()
    if "truncated" in lowered or "end of file" in lowered or "broken data stream" in lowered:
        return "truncated"
    return text
