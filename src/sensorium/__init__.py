"""Sensorium: offline multimodal perception, one shared space, cross-modal search.

Heavy modules (torch, models) load lazily, so `import sensorium` stays fast.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Collection", "classify", "classify_many", "imagine", "__version__"]


def __getattr__(name: str):
    if name == "Collection":
        from .collection import Collection

        return Collection
    if name in ("classify", "classify_many"):
        from . import classification

        return getattr(classification, name)
    if name == "imagine":
        from .generation.imagine import imagine

        return imagine
    raise AttributeError(f"module 'sensorium' has no attribute {name!r}")
