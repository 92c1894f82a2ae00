"""Hostile inputs for every reader: valid seed files, structure-aware generators (valid headers with
hostile fields, as in the 1 Hz WAV) and byte mutations, and the one rule every reader must keep.

Shared by `tests/test_fuzz.py` (a few thousand derandomised inputs in `make test`) and
`benchmarks/fuzz_readers.py` (>= 100,000 per reader, hypothesis and atheris). The rule
(`outcome`): a reader returns a payload that keeps its invariants, or raises one of Sensorium's own
errors naming the file; anything else (an uncaught exception, a MemoryError under the budget) is
a failure.
"""
from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sensorium.errors import SensoriumError

READERS = ("audio", "image", "video", "text", "manifest", "config")


# --- seeds: one small valid file of each kind ------------------------------------------------------
@lru_cache(maxsize=None)
def seeds() -> dict[str, list[tuple[str, bytes]]]:
    """(suffix, bytes) of small valid files, by reader."""
    import soundfile as sf
    from PIL import Image

    t = np.arange(8000) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    audio = []
    for fmt, subtype, suffix in (("WAV", "PCM_16", ".wav"), ("WAV", "PCM_U8", ".wav"), ("FLAC", "PCM_16", ".flac"),
                                 ("OGG", "VORBIS", ".ogg")):
        buffer = io.BytesIO()
        sf.write(buffer, tone, 8000, format=fmt, subtype=subtype)
        audio.append((suffix, buffer.getvalue()))
    pixels = (np.indices((24, 32)).sum(axis=0) * 5 % 255).astype(np.uint8)
    rgb = np.stack([pixels, pixels[::-1], 255 - pixels], axis=-1)
    image = []
    for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"), ("BMP", ".bmp"), ("WEBP", ".webp")):
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format=fmt)
        image.append((suffix, buffer.getvalue()))
    text = [(".txt", "Caf\u00e9 notes: water the ferns.\nSecond line.\n".encode("utf-8")),
            (".txt", "\ufeffBOM and UTF-16 text\n".encode("utf-16"))]
    manifest = [(".csv", b"image,caption,label\na.jpg,a red cube,cube\nb.jpg,two spheres,sphere\n")]
    config = [(".toml", b'[model]\nfusion = "late"\n\n[data]\ntrain = "train.csv"\nlabel = "label"\n\n'
                        b'[data.modalities.image]\ncolumn = "image"\nencoder = "image_cnn"\n\n[train]\nepochs = 1\n')]
    return {"audio": audio, "image": image, "video": [(".mp4", _tiny_video())], "text": text,
            "manifest": manifest, "config": config}


def _tiny_video() -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for index in range(6):
            frame = np.full((24, 32, 3), index * 40, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


# --- structure-aware builders: valid framing, hostile fields ---------------------------------------
def wav(rate: int, channels: int, bits: int, data: bytes, format_tag: int = 1, declared: int | None = None) -> bytes:
    """A RIFF/WAVE file whose header says whatever it is told (`declared`: the data chunk's size)."""
    block = (channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", format_tag & 0xFFFF, channels & 0xFFFF, rate & 0xFFFFFFFF,
                      (rate * block) & 0xFFFFFFFF, block, bits & 0xFFFF)
    size = len(data) if declared is None else declared & 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", (36 + size) & 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", size) + data)


def png(width: int, height: int, bit_depth: int = 8, colour: int = 2, idat: bytes | None = None) -> bytes:
    """A PNG with a correct CRC on every chunk and the IHDR fields it is told."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width & 0xFFFFFFFF, height & 0xFFFFFFFF, bit_depth & 0xFF, colour & 0xFF, 0, 0, 0)
    body = zlib.compress(bytes(64)) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None = None) -> bytes:
    """`data` with bytes overwritten at (position mod length, value) and optionally truncated."""
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value & 0xFF
    if cut is not None and out:
        del out[cut % len(out):]
    return bytes(out)


# --- the rule -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    ok: bool  # kept the rule
    what: str  # "payload", "refused: <reason>", or the failure


def reader_for(name: str) -> Callable[[Path], object]:
    """The function fuzzed for each reader name; manifest and config parse into what train/align use."""
    if name == "audio":
        from sensorium.readers import read_audio
        return read_audio
    if name == "image":
        from sensorium.readers import read_image
        return read_image
    if name == "video":
        from sensorium.readers import read_video
        return lambda path: read_video(path, max_frames=8, max_side=64)
    if name == "text":
        from sensorium.readers import read_text
        return read_text
    if name == "manifest":
        from sensorium.align.data import load_pairs

        return lambda path: load_pairs(path, left="image", right="caption", allow_missing=True)
    if name == "config":
        from sensorium.align.job import load_job
        from sensorium.training.config import load_config

        def both(path: Path) -> object:
            for load in (load_config, load_job):
                try:
                    load(path)
                except SensoriumError:
                    pass
            return None
        return both
    raise ValueError(f"unknown reader {name!r} (known: {', '.join(READERS)})")


def outcome(name: str, path: Path) -> Outcome:
    """Run one reader on one file and judge it by the rule."""
    try:
        payload = reader_for(name)(path)
    except SensoriumError as error:
        return Outcome(True, f"refused: {error}")
    except Exception as error:  # noqa: BLE001 - this is what the fuzzer looks for
        return Outcome(False, f"{type(error).__name__}: {error}"[:300])
    problem = _broken_invariant(payload)
    return Outcome(problem is None, problem or "payload")


def _broken_invariant(payload) -> str | None:
    modality = getattr(payload, "modality", None)
    if modality == "audio":
        s = payload.samples
        if s.dtype != np.float32 or s.ndim != 1 or not s.size or not np.isfinite(s).all() or np.abs(s).max() > 1.0:
            return "audio payload breaks its invariants"
    elif modality == "image":
        p = payload.pixels
        if p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3 or not p.flags.c_contiguous:
            return "image payload breaks its invariants"
    elif modality == "text":
        if not isinstance(payload.text, str) or not payload.text.strip():
            return "text payload breaks its invariants"
    elif modality == "video":
        if not payload.frames or any(f.pixels.dtype != np.uint8 or f.pixels.ndim != 3 for f in payload.frames):
            return "video payload breaks its invariants"
    return None
