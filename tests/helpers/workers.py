"""A folder for the worker tests (tests/test_workers*.py) and a way to compare two collections:
everything stored, keyed by file name and segment order, independent of catalog ids."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.cli import another_view_of, make_media

from sensorium import Collection

PHOTOS = 20  # more than one batch of 16, so that batches go to both workers


def make_folder(root: Path) -> Path:
    """make_media's five files, 20 more photos (views of scikit-image's) and one broken PNG."""
    from skimage import data

    make_media(root)
    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    for index in range(PHOTOS):
        pixels = another_view_of(sources[index % len(sources)])
        if index >= len(sources):
            pixels = np.ascontiguousarray(np.rot90(pixels, k=index // len(sources)))
        Image.fromarray(pixels).save(root / f"photo-{index:02d}.jpg", quality=90)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return root


def snapshot(directory: Path, folder: Path) -> dict:
    """Everything a collection stored, keyed by file name and segment order, independent of ids."""
    with Collection(directory) as col:
        catalog = col.catalog
        items = {}
        for path in sorted(catalog.paths()):
            item = catalog.item(path)
            if item is None:  # a file that failed: in `failures` below
                continue
            _, segments = catalog.item_detail(item.id)
            rows = []
            for segment in segments:
                vectors = {}
                for space in catalog.spaces():
                    _, matrix = catalog.vectors_for(space, [segment.id])
                    if len(matrix):
                        vectors[space] = matrix[0]
                rows.append((segment.source, segment.text, segment.start, segment.end, vectors))
            items[Path(path).relative_to(folder).as_posix()] = (item.modality, item.meta, rows)
        failures = [(Path(p).name, reason) for p, reason in catalog.failures()]
    return {"items": items, "failures": failures}


def assert_same_collection(ours: dict, theirs: dict) -> None:
    assert ours["failures"] == theirs["failures"]
    assert sorted(ours["items"]) == sorted(theirs["items"])
    for name, (modality, meta, rows) in theirs["items"].items():
        our_modality, our_meta, our_rows = ours["items"][name]
        assert (our_modality, our_meta, len(our_rows)) == (modality, meta, len(rows)), name
        for (source, text, start, end, vectors), (o_source, o_text, o_start, o_end, o_vectors) in zip(rows, our_rows):
            assert (o_source, o_text) == (source, text), name
            assert o_start == pytest.approx(start, abs=1e-3) and o_end == pytest.approx(end, abs=1e-3)
            assert sorted(o_vectors) == sorted(vectors), name
            for space, vector in vectors.items():
                np.testing.assert_allclose(o_vectors[space], vector, atol=2e-4, err_msg=f"{name} {space}")
