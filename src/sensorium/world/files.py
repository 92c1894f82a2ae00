"""Weights of the world's models on disk: safetensors for the tensors, JSON for the config.

One pair of functions so that every world model (captioner, detector, object reader, question
parser) reads and writes the same way, checks what it reads, and never unpickles anything; and one
pair for the pipelines made of them (the question answerer, the captioner): a folder of parts and a
manifest naming its format.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from torch import nn

from ..errors import ReadError

VQA_HINT = "not a world question-answering model (train one with `sensorium world train --model vqa`)"


def save_model(model: nn.Module, folder: str | Path, stem: str, record: dict) -> Path:
    """FOLDER/STEM.safetensors (the state dict) and FOLDER/STEM.json (`record`, which names the format)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / f"{stem}.safetensors"))
    (folder / f"{stem}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return folder


def read_record(folder: str | Path, stem: str, expected_format: str, hint: str) -> dict:
    """FOLDER/STEM.json, checked to be a `expected_format` record; the format key removed.
    `hint` says how to make one (shown when the file is missing)."""
    path = Path(folder) / f"{stem}.json"
    if not path.is_file():
        raise ReadError(folder, f"no {path.name}: {hint}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReadError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(record, dict) or record.pop("format", None) != expected_format:
        raise ReadError(path, f"not a {expected_format} config")
    return record


def load_weights(model: nn.Module, folder: str | Path, stem: str) -> nn.Module:
    """Fill `model` from FOLDER/STEM.safetensors; ReadError when the file is damaged or does not fit."""
    from safetensors.torch import load_file

    path = Path(folder) / f"{stem}.safetensors"
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own types for a missing or damaged file
        raise ReadError(path, f"not a valid safetensors file ({exc})") from exc
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ReadError(path, f"weights do not fit the config (missing {len(missing)}, unexpected {len(unexpected)})")
    return model.eval()


class SavedModel:
    """Mixin for a world model with a dataclass `config`: `save(folder)` and `load(folder)` as
    STEM.safetensors + STEM.json. A subclass names `stem`, `file_format`, `hint` and turns the stored
    record back into its config (`config_from`: JSON lists back to tuples)."""

    stem: str
    file_format: str
    hint: str = VQA_HINT

    @classmethod
    def config_from(cls, record: dict):
        raise NotImplementedError

    def save(self, folder: str | Path) -> Path:
        return save_model(self, folder, self.stem, {"format": self.file_format, **asdict(self.config)})

    @classmethod
    def load(cls, folder: str | Path):
        record = read_record(folder, cls.stem, cls.file_format, cls.hint)
        return load_weights(cls(cls.config_from(record)), folder, cls.stem)


def save_parts(folder: str | Path, parts, manifest: str, file_format: str) -> Path:
    """Each part (a `SavedModel`) in FOLDER, and FOLDER/MANIFEST naming the format and the parts' stems."""
    folder = Path(folder)
    for part in parts:
        part.save(folder)
    record = {"format": file_format, "parts": [part.stem for part in parts]}
    (folder / manifest).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return folder


def parts_folder(folder: str | Path, manifest: str, run_dir: str, hint: str) -> Path:
    """FOLDER when it holds MANIFEST, else FOLDER/RUN_DIR (the run folder `sensorium world train` wrote
    holds the model there); ReadError with `hint` when neither does."""
    folder = Path(folder)
    if (folder / manifest).is_file():
        return folder
    if (folder / run_dir / manifest).is_file():
        return folder / run_dir
    raise ReadError(folder, f"no {manifest}: {hint}")


class SavedPipeline:
    """Mixin for a pipeline of `SavedModel` parts kept in one folder with a manifest: a subclass names
    `part_types` (in its constructor's order), `parts()` (its instances, same order), `manifest`,
    `pipeline_format`, `run_dir` and `hint`; `load` also takes the run folder that holds it."""

    part_types: tuple[type[SavedModel], ...]
    manifest: str
    pipeline_format: str
    run_dir: str
    hint: str

    def parts(self) -> tuple[SavedModel, ...]:
        raise NotImplementedError

    def save(self, folder: str | Path) -> Path:
        return save_parts(folder, self.parts(), self.manifest, self.pipeline_format)

    @classmethod
    def load(cls, folder: str | Path):
        folder = parts_folder(folder, cls.manifest, cls.run_dir, cls.hint)
        return cls(*(part.load(folder) for part in cls.part_types))
