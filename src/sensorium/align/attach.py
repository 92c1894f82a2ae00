"""A trained space attached to a collection: its heads, its combination weight, its stored vectors.

`sensorium align` writes a folder (space.safetensors + space.json + align.json). Attaching it to a
collection copies that folder into the collection and gives every image and video-shot segment a
learned vector computed from the vectors the catalog already holds (the heads read frozen
features: EfficientNet native 1280-d and bridge 384-d), so no expert runs again.

Why the learned vectors live under a name carrying the space's content id ("learned-<id>"): a new
space's vectors accumulate beside the old space's, which stays in use until the new one is
complete; the switch is one catalog transaction. A crash (even `kill -9`) at any point leaves the
old space attached and the new one's finished batches stored, and attaching again resumes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ReadError
from .projection import CONFIG_FILE, WEIGHTS_FILE, Space

ALIGN_FILE = "align.json"
SPACE_FILES = (WEIGHTS_FILE, CONFIG_FILE, ALIGN_FILE)
PREFIX = "learned-"
TEXT_INPUT = "text"  # the text head reads the text expert's embedding of the query itself
IMAGE_HEAD, TEXT_HEAD = "image", "text"


def space_id(folder: Path) -> str:
    """Content id of a space folder: the same files always give the same id."""
    digest = hashlib.sha256()
    for name in SPACE_FILES:
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class AttachedSpace:
    """A loaded space folder: heads, the weight w of `bridge cosine + w * learned cosine`, and which
    stored vector spaces (concatenated in order) feed each head."""

    folder: Path
    id: str
    space: Space
    weight: float
    inputs: dict[str, list[str]]
    info: dict

    @property
    def name(self) -> str:
        """The catalog / ANN space holding this space's vectors."""
        return PREFIX + self.id

    @property
    def dim(self) -> int:
        return self.space.dim

    @classmethod
    def load(cls, folder: str | Path) -> "AttachedSpace":
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ReadError(folder, "not a space folder (expected the --out folder of `sensorium align`)")
        for name in SPACE_FILES:
            if not (folder / name).is_file():
                raise ReadError(folder / name, "missing: not a complete `sensorium align` output")
        try:
            info = json.loads((folder / ALIGN_FILE).read_text(encoding="utf-8"))
            weight = float(info["weight"])
            inputs = {head: [str(s) for s in spaces] for head, spaces in info["inputs"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReadError(folder / ALIGN_FILE, f"not a valid align summary ({exc})") from exc
        if not np.isfinite(weight) or weight < 0:
            raise ReadError(folder / ALIGN_FILE, f"weight must be a finite number >= 0, got {weight}")
        space = Space.load(folder)
        for head in (IMAGE_HEAD, TEXT_HEAD):
            if head not in space.heads or head not in inputs:
                raise ReadError(folder / CONFIG_FILE, f"space has no {head!r} head with named inputs; "
                                                      "only image-text spaces can be attached")
        return cls(folder, space_id(folder), space, weight, inputs, info)

    # --- embedding ----------------------------------------------------------------------------
    def embed_stored(self, vectors: dict[str, np.ndarray]) -> np.ndarray:
        """Image-head vectors from stored per-space vectors {space: (n, d)}, concatenated in order."""
        parts = []
        for name in self.inputs[IMAGE_HEAD]:
            if name not in vectors:
                raise ConfigError(f"space {self.folder}: image head needs {name!r} vectors")
            parts.append(np.asarray(vectors[name], dtype=np.float32))
        features = np.concatenate(parts, axis=1)
        expected = self.space.heads[IMAGE_HEAD].in_dim
        if features.shape[1] != expected:
            raise ConfigError(f"space {self.folder}: image head expects {expected}-d input, the stored "
                              f"{'+'.join(self.inputs[IMAGE_HEAD])} vectors give {features.shape[1]}-d")
        return self.space.embed(IMAGE_HEAD, features)

    def embed_descriptions(self, descriptions) -> np.ndarray:
        """Image-head vectors for fresh ImageBridge descriptions (classify, query images)."""
        return self.embed_stored({"image": np.stack([d.native for d in descriptions]),
                                  "shared": np.stack([d.shared for d in descriptions])})

    def embed_text(self, text_vectors: np.ndarray) -> np.ndarray:
        """Text-head vectors from the text expert's embeddings (n, 384)."""
        return self.space.embed(TEXT_HEAD, np.asarray(text_vectors, dtype=np.float32).reshape(
            -1, self.space.heads[TEXT_HEAD].in_dim))

    def summary(self) -> dict:
        return {"id": self.id, "name": self.name, "dim": self.dim, "weight": self.weight,
                "inputs": self.inputs, "config": self.info.get("source", ""),
                "loss": self.info.get("config", {}).get("loss")}


# --- copying into a collection ----------------------------------------------------------------
def install(source: AttachedSpace, spaces_dir: Path) -> Path:
    """Copy the space folder to spaces_dir/<id> atomically (temp folder, fsync, rename)."""
    target = spaces_dir / source.id
    if target.is_dir() and all((target / n).is_file() for n in SPACE_FILES) and space_id(target) == source.id:
        return target
    spaces_dir.mkdir(parents=True, exist_ok=True)
    temporary = spaces_dir / f".tmp-{source.id}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    for name in SPACE_FILES:
        shutil.copyfile(source.folder / name, temporary / name)
        fd = os.open(temporary / name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    shutil.rmtree(target, ignore_errors=True)  # a torn copy from an earlier crash
    os.replace(temporary, target)
    return target


# --- catalog writes the Catalog class has no method for (one transaction each) ---------------
def missing_ids(catalog, attached: AttachedSpace) -> np.ndarray:
    """Segments that hold every input the image head needs but no vector of this space yet."""
    ids = None
    for name in attached.inputs[IMAGE_HEAD]:
        have = catalog.vector_ids(name)
        ids = have if ids is None else np.intersect1d(ids, have, assume_unique=True)
    return np.setdiff1d(ids, catalog.vector_ids(attached.name), assume_unique=True)


def inputs_missing(catalog, attached: AttachedSpace) -> list[str]:
    """Input spaces the head needs that the collection does not store (while it stores images)."""
    if not len(catalog.segment_ids({"image", "video"})):
        return []
    stored = catalog.spaces()
    return [name for name in attached.inputs[IMAGE_HEAD] if name not in stored]


def put_vectors(catalog, space: str, ids: np.ndarray, matrix: np.ndarray) -> None:
    """Store vectors for existing segments in one transaction (ids deleted meanwhile are skipped)."""
    matrix = np.ascontiguousarray(matrix, dtype="<f4")
    rows = [(int(i), space, int(matrix.shape[1]), matrix[n].tobytes(), int(i)) for n, i in enumerate(ids)]
    with catalog._transaction() as db:  # noqa: SLF001 - the catalog's own all-or-nothing transaction
        db.executemany("INSERT OR REPLACE INTO vectors (segment_id, space, dim, data) "
                       "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM segments WHERE id = ?)", rows)


def switch(catalog, changes: dict[str, object], drop_spaces: list[str]) -> None:
    """Set meta keys (None deletes) and drop whole vector spaces, all in ONE transaction."""
    with catalog._transaction() as db:  # noqa: SLF001
        for key, value in changes.items():
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                           "value = excluded.value", (key, json.dumps(value)))
        for space in drop_spaces:
            db.execute("DELETE FROM vectors WHERE space = ?", (space,))


def learned_spaces(catalog) -> list[str]:
    return [name for name in catalog.spaces() if name.startswith(PREFIX)]
