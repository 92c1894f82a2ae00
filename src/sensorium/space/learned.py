"""A trained space at query time: its heads, its combination weight, its stored vectors in a collection.

`sensorium align` writes a folder (space.safetensors + space.json + align.json). Attaching it to a
collection copies that folder into the collection and gives every segment an item head can read a
learned vector computed from the vectors the catalog already holds, so no expert runs again:
  image head <- EfficientNet native 1280-d + bridge 384-d: every image and video-shot segment;
  audio head <- the native "audio" vector 512-d (pooled Whisper encoder, L2-normalised): every
                sound / video-sound window, speech or not.
A space needs a text head (queries) and at least one of the two item heads.

Why the audio head reads L2-normalised features: that is what a collection stores and what a query
file yields (`WhisperPooler.embed`); `sensorium align` normalises its (cached, raw) training features
the same way and records it in align.json (`input_norm`). A space without that record was trained
on raw features and would see other inputs here, so its audio head is refused.

Why the learned vectors live under a name carrying the space's content id ("learned-<id>"): a new
space's vectors accumulate beside the old space's, which stays in use until the new one is
complete; the switch is one catalog transaction. A crash (even `kill -9`) at any point leaves the
old space attached and the new one's finished batches stored, and attaching again resumes.

Everything here runs at search, classify and attach time, so the heads run with numpy
(`sensorium.space.projection`); training them is `sensorium.align`'s job.
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
from .projection import CONFIG_FILE, WEIGHTS_FILE, Projection

ALIGN_FILE = "align.json"
SPACE_FILES = (WEIGHTS_FILE, CONFIG_FILE, ALIGN_FILE)
PREFIX = "learned-"
TEXT_INPUT = "text"  # the text head reads the text expert's embedding of the query itself
IMAGE_HEAD, TEXT_HEAD, AUDIO_HEAD = "image", "text", "audio"
ITEM_HEADS = (IMAGE_HEAD, AUDIO_HEAD)  # heads that embed stored segments (the text head embeds queries)
INPUT_NORM = {AUDIO_HEAD: "l2"}  # what each head's input is, at training, attach and query time alike
ITEM_KINDS = {IMAGE_HEAD: {"image", "video"}, AUDIO_HEAD: {"audio"}}  # kinds whose vectors a head must find


def head_input(head: str, features: np.ndarray) -> np.ndarray:
    """The input a head is trained and run on: L2-normalised rows for the audio head, as is otherwise."""
    features = np.asarray(features, dtype=np.float32)
    if INPUT_NORM.get(head) == "l2":
        return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)
    return features


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
    space: Projection
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
        space = Projection.load(folder)
        if TEXT_HEAD not in space.heads or TEXT_HEAD not in inputs:
            raise ReadError(folder / CONFIG_FILE, "space has no 'text' head with named inputs; "
                                                  "only spaces with a text head can be attached")
        if not any(head in space.heads and head in inputs for head in ITEM_HEADS):
            raise ReadError(folder / CONFIG_FILE, "space has no 'image' or 'audio' head with named inputs; "
                                                  "only image-text and audio-text spaces can be attached")
        norms = info.get("input_norm") or {}
        if AUDIO_HEAD in space.heads and norms.get(AUDIO_HEAD) != INPUT_NORM[AUDIO_HEAD]:
            raise ReadError(folder / ALIGN_FILE, "its audio head was trained on unnormalised audio features "
                                                 "(no input_norm.audio = \"l2\"); train it again with this "
                                                 "version of `sensorium align`")
        return cls(folder, space_id(folder), space, weight, inputs, info)

    @property
    def item_heads(self) -> list[str]:
        """The heads that embed stored segments, in the order a segment is offered to them."""
        return [head for head in ITEM_HEADS if head in self.space.heads and head in self.inputs]

    # --- embedding ----------------------------------------------------------------------------
    def embed_stored(self, vectors: dict[str, np.ndarray], head: str = IMAGE_HEAD) -> np.ndarray:
        """`head` vectors from stored per-space vectors {space: (n, d)}, concatenated in order."""
        if head not in self.item_heads:
            raise ConfigError(f"space {self.folder}: has no {head!r} head")
        parts = []
        for name in self.inputs[head]:
            if name not in vectors:
                raise ConfigError(f"space {self.folder}: {head} head needs {name!r} vectors")
            parts.append(np.asarray(vectors[name], dtype=np.float32))
        features = np.concatenate(parts, axis=1)
        expected = self.space.heads[head].in_dim
        if features.shape[1] != expected:
            raise ConfigError(f"space {self.folder}: {head} head expects {expected}-d input, the stored "
                              f"{'+'.join(self.inputs[head])} vectors give {features.shape[1]}-d")
        return self.space.embed(head, head_input(head, features))

    def head_for(self, available) -> str | None:
        """The first item head whose every input is among `available` (vector space names)."""
        return next((h for h in self.item_heads if all(name in available for name in self.inputs[h])), None)

    def embed_segments(self, segments) -> dict[int, np.ndarray]:
        """{position: learned vector} for the segments (each with a .vectors dict) some item head can read."""
        out: dict[int, np.ndarray] = {}
        for head in self.item_heads:
            ready = [n for n, s in enumerate(segments) if n not in out and self.head_for(s.vectors) == head]
            if ready:
                learned = self.embed_stored({name: np.stack([segments[n].vectors[name] for n in ready])
                                             for name in self.inputs[head]}, head)
                out.update(zip(ready, learned))
        return out

    def embed_sounds(self, pooled: np.ndarray) -> np.ndarray:
        """Audio-head vectors for sound windows' native vectors (n, 512), e.g. `WhisperPooler.embed`."""
        return self.embed_stored({AUDIO_HEAD: np.atleast_2d(np.asarray(pooled, dtype=np.float32))}, AUDIO_HEAD)

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
                "heads": self.item_heads + [TEXT_HEAD], "inputs": self.inputs, "config": self.info.get("source", ""),
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
    """Segments that hold every input of some item head but no vector of this space yet."""
    found = [np.zeros(0, np.int64)]
    for head in attached.item_heads:
        ids = None
        for name in attached.inputs[head]:
            have = catalog.vector_ids(name)
            ids = have if ids is None else np.intersect1d(ids, have, assume_unique=True)
        found.append(ids)
    ids = np.unique(np.concatenate(found)).astype(np.int64)
    return np.setdiff1d(ids, catalog.vector_ids(attached.name), assume_unique=True)


def inputs_missing(catalog, attached: AttachedSpace) -> dict[str, list[str]]:
    """{head: input spaces it needs that the collection does not store, while it stores items of the
    kinds that feed that head} (an empty dict: nothing missing)."""
    stored = catalog.spaces()
    out = {}
    for head in attached.item_heads:
        absent = [name for name in attached.inputs[head] if name not in stored]
        if absent and len(catalog.segment_ids(ITEM_KINDS[head])):
            out[head] = absent
    return out


def is_learned(space: str | None) -> bool:
    """Whether a vector space name holds an attached space's vectors ("learned-<id>")."""
    return bool(space) and space.startswith(PREFIX)


def learned_spaces(catalog) -> list[str]:
    return [name for name in catalog.spaces() if is_learned(name)]
