"""Trainable encoders, one family per modality, all returning `EncoderOutput` (tokens, mask, pooled).

`create(name, **kwargs)` builds one by name, so a trainer or benchmark config can name encoders;
classes load lazily so listing them does not import every module.
"""
from __future__ import annotations

from importlib import import_module

from ..errors import ConfigError
from .output import EncoderOutput

_ENCODERS: dict[str, tuple[str, str]] = {
    "image_cnn": ("image_cnn", "ImageCNN"),
    "image_vit": ("image_vit", "ImageViT"),
    "audio_cnn": ("audio_cnn", "AudioCNN"),
    "audio_ast": ("audio_ast", "AudioAST"),
    "text_transformer": ("text_transformer", "TextTransformer"),
    "series_cnn": ("series_cnn", "SeriesCNN"),
    "series_transformer": ("series_transformer", "SeriesTransformer"),
    "video_factorised": ("video_factorised", "VideoFactorised"),
    "frozen": ("frozen", "FrozenEncoder"),
}

__all__ = ["EncoderOutput", "available", "create", "encoder_class"]


def available() -> list[str]:
    """Names `create` accepts, sorted."""
    return sorted(_ENCODERS)


def encoder_class(name: str) -> type:
    if name not in _ENCODERS:
        raise ConfigError(f"encoder: unknown name {name!r}; available: {', '.join(available())}")
    module, cls = _ENCODERS[name]
    return getattr(import_module(f".{module}", __name__), cls)


def create(name: str, **kwargs):
    """Build the encoder called `name`; kwargs go to its constructor."""
    try:
        return encoder_class(name)(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"encoder {name!r}: {exc}") from exc
