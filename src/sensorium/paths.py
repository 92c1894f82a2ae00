"""Where Sensorium keeps files outside a collection: derived files (joined model files, caches) and
the user's own settings (the signing identity of provenance).

`SENSORIUM_HOME` overrides the default `~/.cache/sensorium`; tests point it at a temp folder.
`SENSORIUM_CONFIG` overrides the default `$XDG_CONFIG_HOME/sensorium` (`~/.config/sensorium`):
what lives there is not a cache, so it must never be in a folder people clear.
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


def config_home() -> Path:
    root = os.environ.get("SENSORIUM_CONFIG")
    if root:
        path = Path(root)
    else:
        base = os.environ.get("XDG_CONFIG_HOME")
        path = (Path(base) if base else Path.home() / ".config") / "sensorium"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
