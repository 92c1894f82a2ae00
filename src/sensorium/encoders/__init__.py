"""Trainable encoders, one family per modality, all returning `EncoderOutput` (tokens, mask, pooled).

`create(name, **kwargs)` builds one by name, so a trainer or benchmark config can name encoders;
classes load lazily so listing them does not import every module. A name with a colon is your own
module by import path ("mypackage.module:LeNet"), wrapped by `foreign.ForeignEncoder`.
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
    from ..imported import is_import_path

    if is_import_path(name):
        return _create_foreign(name, kwargs)
    try:
        return encoder_class(name)(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"encoder {name!r}: {exc}") from exc


def _create_foreign(name: str, kwargs: dict):
    """Your own module: `output_dim` goes to its constructor only if that takes one."""
    import inspect

    from ..imported import load_object
    from .foreign import ForeignEncoder

    cls = load_object(name, "encoder")
    width = kwargs.get("output_dim")
    try:
        parameters = inspect.signature(cls).parameters
        takes_width = "output_dim" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    except (TypeError, ValueError):
        takes_width = True
    arguments = kwargs if takes_width else {k: v for k, v in kwargs.items() if k != "output_dim"}
    try:
        module = cls(**arguments)
    except TypeError as exc:
        raise ConfigError(f"encoder {name!r}: {exc}") from exc
    width = width if width is not None else getattr(module, "output_dim", None)
    if not isinstance(width, int) or width <= 0:
        raise ConfigError(f"encoder {name!r}: say its output width with output_dim = N (it has no output_dim)")
    return ForeignEncoder(module, width, name)
