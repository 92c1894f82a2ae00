"""Where Sensorium keeps derived files outside a collection (joined model files, caches).

`SENSORIUM_HOME` overrides the default `~/.cache/sensorium`; tests point it at a temp folder.
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    root = os.environ.get("SENSORIUM_HOME")
    path = Path(root) if root else Path.home() / ".cache" / "sensorium"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
