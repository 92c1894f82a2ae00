"""The frozen pretrained experts, created lazily behind one small registry.

`Experts(config)` builds each expert the first time it is asked for, so a process that only
searches text never loads the image or speech models. Every expert reads its weights from an
installed package, or from a local folder named in `ExpertConfig` (the user's own weights).
"""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

from .base import ModelInfo

# A loaded Whisper unused this long is freed (reloading took 0.44-0.47 s on 2 cores): while it lives, its
# threads slow torch in the same process 1.2-1.7x (docs/experiments/2026-12-07-whisper-threads-slow-torch.md)
SPEECH_IDLE_SECONDS = 30.0


@dataclass(frozen=True)
class ExpertConfig:
    """Where each expert's weights come from; None means the packaged default."""

    text_dir: str | None = None  # a sentence-transformers folder
    image_weights: str | None = None  # EfficientNet-Lite0 weights (.safetensors)
    speech_dir: str | None = None  # a CTranslate2 Whisper folder
    clip_dir: str | None = None  # a Hugging Face transformers CLIP checkpoint (adds the "clip" space)
    keyword_dir: str | None = None  # melspectrogram.onnx + embedding_model.onnx (spoken-label templates)
    ocr: bool = True  # read text in images (slower indexing)
    people: bool = True  # detect people in images (ImageNet has no "person" class)
    # "int8": the image classifier quantised (1.96-2.01x the fp32 network's views/s, 1.62-1.83x its
    # photos/s, measured with VNNI; BENCHMARKS.md, "Image expert precision").
    # Not a model change: its vectors stay comparable with fp32 ones (cosine 0.99), so a collection
    # may switch, and only files indexed later use the new setting.
    image_precision: str = "fp32"

    def __post_init__(self):
        from .image import PRECISIONS

        if self.image_precision not in PRECISIONS:
            from ..errors import ConfigError

            raise ConfigError(f"image_precision: must be one of {', '.join(PRECISIONS)}, not {self.image_precision!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ExpertConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


class Experts:
    """Lazily created experts sharing one configuration."""

    def __init__(self, config: ExpertConfig | None = None):
        self.config = config or ExpertConfig()

    @cached_property
    def text(self):
        from .text import TextEncoder

        return TextEncoder(self.config.text_dir)

    @cached_property
    def image(self):
        from .image import ImageExpert

        return ImageExpert(self.config.image_weights, precision=self.config.image_precision)

    @cached_property
    def whisper(self):
        """The one Whisper model (loaded on first use) that `speech` and `sound` share."""
        from .whisper import Whisper

        return Whisper(self.config.speech_dir)

    @cached_property
    def speech(self):
        from .speech import SpeechRecognizer

        return SpeechRecognizer(keyword_dir=self.config.keyword_dir, whisper=self.whisper)

    @cached_property
    def sound(self):
        """Native audio vectors (Whisper's encoder, pooled), from the speech expert's model."""
        from .sound import WhisperPooler

        return WhisperPooler(self.whisper)

    @cached_property
    def clip(self):
        if not self.config.clip_dir:
            return None
        from .clip import ClipBackend

        return ClipBackend(self.config.clip_dir)

    def release(self) -> None:
        """Free Whisper now if it is loaded (it loads again on next use): its threads slow torch work in
        the process while it lives (`sensorium.experts.whisper.Whisper`). The other experts stay: none
        was found to slow torch (only Whisper did, in the search of docs/experiments/
        2026-12-07-whisper-threads-slow-torch.md); onnxruntime's own thread pools were not measured."""
        if "whisper" in self.__dict__:  # built: cached_property keeps it there
            self.whisper.release()

    def query_vectors(self, texts: list[str]):
        """Text queries in the shared space: the text side of the space is the plain text
        embedding (the bridge moves images to it), so a text-only search never loads an image model."""
        return self.text.encode(list(texts))

    def models(self) -> list[ModelInfo]:
        """One ModelInfo per expert this configuration uses (loads no weights, hashes files)."""
        infos = [self.text.info(), self.image.info(), self.speech.info()]
        if self.speech.keyword is not None:
            infos.append(self.speech.keyword.info())
        if self.clip is not None:
            infos.append(self.clip.info())
        if self.config.ocr:
            from .ocr import OcrReader

            infos.append(OcrReader().info())
        if self.config.people:
            from .person import PersonDetector

            detector = PersonDetector()
            if hasattr(detector, "info"):
                infos.append(detector.info())
        from .tts import info as tts_info

        infos.append(tts_info())
        return infos


_SHARED: list = []
_SHARED_LOCK = threading.Lock()


def default_experts() -> "Experts":
    """One `Experts` with the default config per process, for the library calls that take none
    (classify, describe, ask): the models load once, however many calls share them."""
    with _SHARED_LOCK:
        if not _SHARED:
            _SHARED.append(Experts())
        return _SHARED[0]


def release_default_experts() -> None:
    """Forget the shared `default_experts`, so their models are freed once no caller holds them
    (the next library call loads them again: Whisper took 0.44-0.47 s to reload, 1.15 s cold, 2 cores).

    Whisper frees itself after `SPEECH_IDLE_SECONDS` unused; call this to free it at once, before
    heavy torch work in a process that has just transcribed or classified sound. Whisper
    (CTranslate2) keeps worker threads whose OpenMP calls land in torch's OpenMP runtime, the one
    torch loads for the whole process; while they live, that runtime counts more threads than
    cores and stops spinning between parallel regions, so every small torch step waits on a
    wake-up. A small text-to-image training ran 55-66 s in a fresh process and 81-101 s after a
    classification of spoken words in the same process (2 cores; docs/experiments/
    2026-12-07-whisper-threads-slow-torch.md)."""
    with _SHARED_LOCK:
        released = list(_SHARED)
        _SHARED.clear()
    for experts in released:
        experts.release()  # also when a caller still holds these `Experts`


def default_config_path() -> Path:
    from ..paths import home

    return home() / "experts.json"
