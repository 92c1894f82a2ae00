"""Native audio vectors: the Whisper base encoder, mean-pooled over the frames that hold sound.

No package ships an audio-text model, so sounds other than speech cannot enter the shared space;
they still get vectors of their own, so a recording can be found by an example recording (the way
image features serve image->image search). The same pooled features feed alignment training
(`sensorium.align.audio_features`).

Whisper's encoder is trained on 30 s windows; a short clip pooled over the whole window would
mostly average the padding. Each clip is encoded in a short window (at least `MIN_WINDOW_SECONDS`,
as the speech expert does for scoring: far cheaper than 30 s; `Whisper.encode`) and only the encoder
frames (20 ms each) that cover the clip itself are averaged. Clips longer than 30 s are cut into 30 s windows
whose pooled vectors are averaged, weighted by their frames.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ModelError
from ..readers.payloads import SAMPLE_RATE
from .whisper import (  # noqa: F401 - DIM and SAMPLES_PER_FRAME re-exported for existing importers
    DIM, MAX_WINDOW_SECONDS, SAMPLES_PER_FRAME, Whisper, frames_covering,
)

MIN_WINDOW_SECONDS = 2  # shortest encoder window: FSDD digits last < 1 s; 4 s gave the same quality at 2.4x the cost
SETTINGS = f"mean-over-audio-frames|min-window={MIN_WINDOW_SECONDS}|max-window={MAX_WINDOW_SECONDS}"


def _windows(samples: np.ndarray) -> list[np.ndarray]:
    """Pieces of at most 30 s (a silent clip still yields one piece, so every clip gets a vector)."""
    step = MAX_WINDOW_SECONDS * SAMPLE_RATE
    pieces = [samples[i:i + step] for i in range(0, len(samples), step)]
    return pieces or [np.zeros(SAMPLE_RATE // 10, np.float32)]


def _window_seconds(length: int) -> int:
    return int(min(MAX_WINDOW_SECONDS, max(MIN_WINDOW_SECONDS, np.ceil(length / SAMPLE_RATE))))


def _clip_key(samples: np.ndarray) -> tuple:
    import hashlib

    samples = np.ascontiguousarray(samples, dtype=np.float32)
    return samples.shape, hashlib.blake2b(samples.tobytes(), digest_size=16).digest()


class WhisperPooler:
    """Whisper base encoder -> one (512,) vector per clip. Raises ModelError when Whisper is unavailable.

    `whisper`: the model, shared with the speech expert (`Experts` hands both the same one); an
    object holding one as `.whisper` (a `SpeechRecognizer`) shares that one; None: the packaged
    model, made here.
    """

    def __init__(self, whisper: Whisper | None = None):
        self.whisper = getattr(whisper, "whisper", whisper) or Whisper()
        self._last = None  # (key, vectors) of the last single clip embedded
        try:
            self.whisper.model  # loads now, so a missing model fails here; kept by `whisper` alone (idle release)
        except ModelError:
            raise
        except (ImportError, OSError) as exc:
            raise ModelError(f"Whisper base is not available for audio features: {exc}") from exc

    @property
    def sha256(self) -> str:
        """The model file's checksum, for feature-cache keys only (asked for once: `Whisper.sha256`)."""
        return self.whisper.sha256

    def pool(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """clips: float32 mono 16 kHz arrays -> (n, 512) float32 (not normalised: the heads learn the scale)."""
        pieces = [(owner, piece) for owner, clip in enumerate(clips)
                  for piece in _windows(np.asarray(clip, np.float32))]
        sums = np.zeros((len(clips), DIM), np.float64)
        counts = np.zeros(len(clips), np.float64)
        by_window: dict[int, list[tuple[int, np.ndarray]]] = {}
        for owner, piece in pieces:
            by_window.setdefault(_window_seconds(len(piece)), []).append((owner, piece))
        for window, group in by_window.items():
            encoded = self.whisper.encode([piece for _, piece in group], window)
            for (owner, piece), frames in zip(group, encoded):
                used = frames_covering(frames.shape[0], len(piece))
                sums[owner] += frames[:used].sum(axis=0)
                counts[owner] += used
        return (sums / counts[:, None]).astype(np.float32)

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Pooled vectors, L2-normalised: what the collection stores and searches by cosine.

        The last single clip's vector is remembered (keyed by its samples' hash), so a clip asked for
        twice in a row (compared, then stored) is encoded once."""
        key = _clip_key(clips[0]) if len(clips) == 1 else None
        last = self._last  # read once: another thread may replace it
        if key is not None and last is not None and last[0] == key:
            return last[1].copy()
        pooled = self.pool(clips)
        vectors = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        if key is not None:
            self._last = (key, vectors.copy())
        return vectors
