"""Frozen-feature extraction with an on-disk cache, so training epochs never re-run the experts.

Each item's features are stored in one .safetensors file named by the item's content hash (file
bytes or text) under a folder named by the extractor and its model checksum. A changed photo, a
changed caption or a changed model therefore misses the cache instead of serving stale vectors.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ..errors import ReadError

Extract = Callable[[list], dict[str, np.ndarray]]  # items -> {feature name: (n, d) array}


def file_key(path: str | Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise ReadError(path, f"cannot read for hashing ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Extractor:
    """A named frozen expert: `checksum` identifies its weights (+ settings), `extract` runs it."""

    name: str
    checksum: str
    extract: Extract
    batch_size: int = 16


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    extract_seconds: float = 0.0


class FeatureCache:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.stats = CacheStats()

    def _path(self, extractor: Extractor, key: str) -> Path:
        return self.folder / f"{extractor.name}-{extractor.checksum[:16]}" / key[:2] / f"{key}.safetensors"

    def features(self, extractor: Extractor, items: Sequence, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """{name: (n, d)} for `items`, computing only those whose key is not cached yet."""
        import time

        if len(items) != len(keys):
            raise ValueError("items and keys differ in length")
        rows: list[dict[str, np.ndarray] | None] = [None] * len(items)
        missing = []
        for index, key in enumerate(keys):
            path = self._path(extractor, key)
            if path.is_file():
                try:
                    rows[index] = load_file(str(path))
                    self.stats.hits += 1
                    continue
                except Exception:  # a torn write: recompute it
                    pass
            missing.append(index)
        start = time.perf_counter()
        for first in range(0, len(missing), extractor.batch_size):
            chunk = missing[first:first + extractor.batch_size]
            out = extractor.extract([items[i] for i in chunk])
            for row, index in enumerate(chunk):
                tensors = {name: np.ascontiguousarray(value[row], dtype=np.float32) for name, value in out.items()}
                path = self._path(extractor, keys[index])
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_suffix(".tmp")
                save_file(tensors, str(temporary))
                temporary.replace(path)
                rows[index] = tensors
        self.stats.misses += len(missing)
        self.stats.extract_seconds += time.perf_counter() - start
        if not rows:
            return {}
        return {name: np.stack([row[name] for row in rows]) for name in rows[0]}

    def image_features(self, extractor: Extractor, paths: Sequence[str | Path]) -> dict[str, np.ndarray]:
        return self.features(extractor, list(paths), [file_key(p) for p in paths])

    def text_features(self, extractor: Extractor, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self.features(extractor, list(texts), [text_key(t) for t in texts])


def cache_checksum(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def image_bridge_extractor(bridge=None) -> Extractor:
    """Photos (paths) -> {"native": (n,1280) EfficientNet features, "shared": (n,384) bridge vectors}."""
    from ..experts.base import sha256_of
    from ..readers.image import read_image
    from ..space.image_bridge import ImageBridge

    if bridge is None:
        bridge = ImageBridge()
    checksum = cache_checksum(sha256_of(bridge.expert.weights_path()), bridge.encoder.info().sha256,
                         repr(bridge.config), bridge.ocr_mode)

    def extract(paths: list) -> dict[str, np.ndarray]:
        pixels = [read_image(p).pixels for p in paths]
        described = bridge.describe(pixels)
        return {"native": np.stack([d.native for d in described]),
                "shared": np.stack([d.shared for d in described])}

    return Extractor("image-bridge", checksum, extract)


def text_extractor(encoder=None, bridge=None) -> Extractor:
    """Texts -> {"text": (n,384) MiniLM vectors} and, given the bridge, {"query": its centred query}."""
    if encoder is None:
        encoder = bridge.encoder if bridge is not None else None
    if encoder is None:
        from ..experts.text import TextEncoder

        encoder = TextEncoder()
    parts = [encoder.info().sha256]
    if bridge is not None:
        parts.append(repr(bridge.config))

    def extract(texts: list) -> dict[str, np.ndarray]:
        out = {"text": encoder.encode(list(texts)).astype(np.float32)}
        if bridge is not None:
            out["query"] = bridge.embed_query(list(texts)).astype(np.float32)
        return out

    return Extractor("text-minilm" + ("-bridge" if bridge is not None else ""), cache_checksum(*parts), extract, 64)


def video_bridge_extractor(bridge=None, frame_rate: float = 1.0, max_frames: int = 16) -> Extractor:
    """Videos (paths) -> the image extractor's {"native", "shared"}, averaged over sampled keyframes.

    A video then feeds the same head as a photo (what a collection stores per video shot is the
    same pair of vectors), so a video-description space attaches like an image-caption one.
    """
    from ..experts.base import sha256_of
    from ..readers.video import read_video
    from ..space.image_bridge import ImageBridge

    if bridge is None:
        bridge = ImageBridge()
    checksum = cache_checksum(sha256_of(bridge.expert.weights_path()), bridge.encoder.info().sha256,
                         repr(bridge.config), bridge.ocr_mode, f"mean-keyframes|{frame_rate}|{max_frames}")

    def extract(paths: list) -> dict[str, np.ndarray]:
        native, shared = [], []
        for path in paths:
            frames = read_video(path, frame_rate=frame_rate, max_frames=max_frames, audio=False).frames
            described = bridge.describe([frame.pixels for frame in frames])
            native.append(np.mean([d.native for d in described], axis=0))
            shared.append(np.mean([d.shared for d in described], axis=0))
        return {"native": np.stack(native), "shared": np.stack(shared)}

    return Extractor("video-bridge", checksum, extract, 4)
