"""What a generated file's manifest says: the generator, the models (id + SHA-256, as `sensorium
models` prints them), the inputs (by hash: never their content), and the parameters."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

GENERATOR = "Sensorium"
ASSERTION = "org.sensorium.generation"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def generator_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sensorium")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def input_hash(data: bytes | str | os.PathLike) -> str:
    """SHA-256 of an input: bytes and text as given, a path by its file's bytes."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def generation(action: str, models: list[dict], inputs: dict[str, str], parameters: dict[str, Any]) -> dict:
    """The Sensorium assertion: `models` as `ModelInfo.as_dict()` rows (name, package, version, sha256),
    `inputs` name -> SHA-256, `parameters` the settings that shaped the output."""
    return {"generator": {"name": GENERATOR, "version": generator_version()}, "action": action,
            "models": [{key: model.get(key) for key in ("name", "package", "version", "sha256")} for model in models],
            "inputs": dict(inputs), "parameters": dict(parameters)}


def c2pa_manifest(title: str, record: dict) -> dict:
    """A C2PA manifest definition: created by a trained algorithm, plus the Sensorium assertion."""
    return {"claim_generator_info": [{"name": GENERATOR, "version": generator_version()}], "title": Path(title).name,
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                 "softwareAgent": {"name": GENERATOR, "version": generator_version()}}]}},
                {"label": ASSERTION, "data": record}]}
