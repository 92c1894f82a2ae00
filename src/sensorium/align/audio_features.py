"""Frozen audio features for alignment: the Whisper base encoder mean-pooled over the frames
that hold sound (`sensorium.experts.sound`), 512-d per clip, cached by `FeatureCache` under the
model's checksum so training epochs never run Whisper again.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..experts.sound import DIM, MIN_WINDOW_SECONDS, SETTINGS, WhisperPooler  # noqa: F401 - re-exported
from ..readers.payloads import SAMPLE_RATE, AudioPayload
from .features import Extractor, FeatureCache, cache_checksum, file_key


def audio_extractor(pooler: WhisperPooler | None = None, batch_size: int = 16) -> Extractor:
    """Audio files (paths) or AudioPayloads -> {"audio": (n, 512) mean-pooled Whisper base encoder output}."""
    pooler = pooler or WhisperPooler()

    def extract(items: list) -> dict[str, np.ndarray]:
        from ..readers.audio import read_audio

        clips = []
        for item in items:
            payload = item if isinstance(item, AudioPayload) else read_audio(item)
            clips.append(_resampled(payload))
        return {"audio": pooler.pool(clips)}

    return Extractor("audio-whisper-base", cache_checksum(pooler.sha256, SETTINGS), extract, batch_size)


def _resampled(payload: AudioPayload) -> np.ndarray:
    samples = np.asarray(payload.samples, np.float32).reshape(-1)
    if payload.sample_rate != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, payload.sample_rate, SAMPLE_RATE).astype(np.float32)
    return samples


def audio_features(cache: FeatureCache, paths: Sequence[str | Path], extractor: Extractor | None = None) -> np.ndarray:
    """(n, 512) features for audio files, computed once and then served from `cache` (keyed by file hash)."""
    extractor = extractor or audio_extractor()
    return cache.features(extractor, list(paths), [file_key(p) for p in paths])["audio"]
