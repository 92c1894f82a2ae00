"""Collections at benchmark scale without running the experts: synthetic clustered vectors.

Why: the speed benchmarks measure search and serving, not encoding, so their items go straight
through the catalog and vector stores. Clustered shared vectors (64 centres plus noise) give the
index a realistic structure instead of uniform noise; image items also get a native image vector.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sensorium.index.catalog import FileState

CLUSTERS = 64
SHARED_DIM = 384
IMAGE_DIM = 1280


def write_synthetic_collection(directory: Path, entries: list[tuple[FileState, str]], label: str,
                               seed: int = 0) -> None:
    """Add one single-segment item per (file state, kind) to the collection at `directory`.

    Segment texts read "{label} {number} cluster {cluster}". The random stream is the same for
    every kind, so a given seed and entry count always gives the same vectors.
    """
    from sensorium import Collection
    from sensorium.index.catalog import NewSegment

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, SHARED_DIM)).astype(np.float32)
    collection = Collection(directory)
    shared, image = collection.store("shared"), collection.store("image")
    for number, (state, kind) in enumerate(entries):
        cluster = number % CLUSTERS
        vector = centres[cluster] + 0.5 * rng.normal(size=SHARED_DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        native = rng.normal(size=IMAGE_DIM).astype(np.float32)  # drawn for every kind: see the docstring
        native /= np.linalg.norm(native)
        vectors = {"shared": vector} | ({"image": native} if kind == "image" else {})
        _, ids, _ = collection.catalog.put_item(state, kind, None, {}, [
            NewSegment(start=None, end=None, source=kind, text=f"{label} {number} cluster {cluster}",
                       vectors=vectors)])
        ids = np.asarray(ids, dtype=np.int64)
        shared.add(ids, vector[None])
        if kind == "image":
            image.add(ids, native[None])
    shared.save()
    image.save()
    collection.close()
