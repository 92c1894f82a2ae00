"""Local CLIP backend: images and texts into one space from a user's own CLIP checkpoint folder.

Why local only: no CLIP weights ship in an installed package, so a user who has a Hugging Face
`transformers` CLIP checkpoint on disk (saved with `save_pretrained`, safetensors weights) can point
Sensorium at it; nothing is ever fetched.

    clip = ClipBackend("~/models/clip-vit-base-patch32")
    clip.encode_images([pixels, ...])   # uint8 (H, W, 3) RGB -> float32 (n, dim), rows L2-normalised
    clip.encode_texts(["a cat", ...])   # -> float32 (n, dim), same space
    clip.dim, clip.info()
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import ModelInfo, sha256_of

WEIGHTS = "model.safetensors"
SHARDED_INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))
PROCESSOR_CONFIG = "preprocessor_config.json"


class ClipBackend:
    """A frozen CLIP expert loaded from a local folder; weights load on first use."""

    def __init__(self, local_dir: str | Path, batch_size: int = 32):
        self.local_dir = Path(local_dir).expanduser()
        self.batch_size = batch_size
        self._config = self._check_folder()
        self.dim = int(self._config.get("projection_dim") or 512)
        self._lock = threading.Lock()
        self._model = self._tokenizer = self._processor = None

    # ------------------------------------------------------------ validation

    def _check_folder(self) -> dict:
        folder = self.local_dir
        if not folder.is_dir():
            raise ModelError(f"{folder}: CLIP folder does not exist")
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise ModelError(f"{folder}: missing config.json (save the model with save_pretrained)")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{config_path}: unreadable model config ({exc})") from exc
        model_type = config.get("model_type") if isinstance(config, dict) else None
        if model_type != "clip":
            raise ModelError(f"{config_path}: not a CLIP checkpoint (model_type={model_type!r}, expected 'clip')")
        if not (folder / WEIGHTS).is_file() and not (folder / SHARDED_INDEX).is_file():
            found = "pytorch_model.bin only; convert it to safetensors" if (folder / "pytorch_model.bin").exists() \
                else "none"
            raise ModelError(f"{folder}: missing {WEIGHTS} (safetensors weights required; found {found})")
        if not any(all((folder / name).is_file() for name in names) for names in TOKENIZER_FILES):
            raise ModelError(f"{folder}: missing tokenizer files (tokenizer.json, or vocab.json + merges.txt)")
        if not (folder / PROCESSOR_CONFIG).is_file():
            raise ModelError(f"{folder}: missing {PROCESSOR_CONFIG} (the image preprocessing settings)")
        return config

    # ------------------------------------------------------------ loading

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

                    where = str(self.local_dir)
                    model = CLIPModel.from_pretrained(where, use_safetensors=True, local_files_only=True)
                    tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
                    processor = AutoImageProcessor.from_pretrained(where, local_files_only=True)
                except Exception as exc:  # noqa: BLE001 - transformers raises many types for a bad folder
                    raise ModelError(f"{self.local_dir}: cannot load CLIP checkpoint ({_first_line(exc)})") from exc
                model.eval()
                self._tokenizer, self._processor, self._model = tokenizer, processor, model
        return self._model, self._tokenizer, self._processor

    # ------------------------------------------------------------ encoding

    def encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        for index, pixels in enumerate(images):
            if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 3
                    and pixels.shape[2] == 3):
                raise ValueError(f"image {index}: expected uint8 (H, W, 3) RGB, got "
                                 f"{getattr(pixels, 'dtype', type(pixels))} {getattr(pixels, 'shape', '')}")
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        model, _, processor = self._load()
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = [np.ascontiguousarray(p) for p in images[start:start + self.batch_size]]
            inputs = processor(images=batch, return_tensors="pt")
            with torch.inference_mode():
                chunks.append(_features(model.get_image_features(pixel_values=inputs["pixel_values"])))
        return _normalised(np.concatenate(chunks))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        model, tokenizer, _ = self._load()
        max_length = int(model.config.text_config.max_position_embeddings)
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            inputs = tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                               max_length=max_length, return_tensors="pt")
            with torch.inference_mode():
                chunks.append(_features(model.get_text_features(
                    input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])))
        return _normalised(np.concatenate(chunks))

    def info(self) -> ModelInfo:
        weights = self.local_dir / WEIGHTS
        if not weights.is_file():
            weights = self.local_dir / SHARDED_INDEX
        name = self._config.get("_name_or_path") or self.local_dir.name
        return ModelInfo(
            name=f"CLIP ({Path(str(name)).name})", task="image-text embedding",
            package=f"local:{self.local_dir}", version=str(self._config.get("transformers_version", "-")),
            file=str(weights), sha256=sha256_of(weights), licence="as stated by the checkpoint's author",
            size_bytes=weights.stat().st_size, dim=self.dim,
        )


def _features(output) -> np.ndarray:
    """transformers < 5 returns the projected tensor; 5.x returns an output whose pooler_output is it."""
    tensor = output if hasattr(output, "detach") else output.pooler_output
    return tensor.detach().float().cpu().numpy()


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
