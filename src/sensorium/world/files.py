"""The world's pipelines on disk (the question answerer, the captioner): a folder of parts, each a
`sensorium.weights.SavedModel` (safetensors + JSON), and a manifest naming the pipeline's format.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ReadError
from ..weights import SavedModel

VQA_HINT = "not a world question-answering model (train one with `sensorium world train --model vqa`)"


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
