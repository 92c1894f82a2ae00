"""Attaching a learned space to a collection: re-embedding from stored vectors, search and classify
combining bridge + w x learned, detaching, and an interrupted attach that loses nothing."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sensorium import Collection
from sensorium.align.job import save_space
from sensorium.align.train import AlignConfig, train_space
from sensorium.experts import ExpertConfig
from helpers.pairs import make_pairs

QUERIES = {"a tabby cat with green eyes": "cat.jpg", "a rocket on its launch pad": "rocket_on_launch_pad.webp",
           "a cup of espresso on a saucer": "coffee.png", "a red motorcycle in a garage": "motorcycle.jpg",
           "distant galaxies in the night sky": "galaxies.jpg"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import csv

    root = tmp_path_factory.mktemp("attach")
    manifest = make_pairs(root)
    collection = Collection(root / "collection", experts=ExpertConfig(ocr=False))  # OCR: slow, not needed here
    report = collection.index(root / "photos")
    assert report.added == 10 and report.ok
    # a tiny space trained on the same features `sensorium align` extracts (here read back from the
    # catalog, so the experts run once): image <- native + shared, text <- the text expert
    rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
    catalog = collection.catalog
    by_path = {Path(row.path).name: row.id for row in catalog.segments(catalog.segment_ids({"image"}))}
    ids = [by_path[Path(r["image"]).name] for r in rows]
    native = dict(zip(*catalog.vectors_for("image", ids)))
    shared = dict(zip(*catalog.vectors_for("shared", ids)))
    images = np.stack([np.concatenate([native[i], shared[i]]) for i in ids])
    texts = collection.experts.text.encode([r["caption"] for r in rows])
    result = train_space(images, texts, "image", "text", AlignConfig(dim=32, epochs=15, batch_size=8),
                         groups=np.asarray(ids))
    spaces = {}
    for name, weight in (("w1", 1.0), ("w0", 0.0)):
        spaces[name] = root / f"space-{name}"
        save_space(spaces[name], result.space, weight, {"history": result.history})
    baseline = {q: _ranked(collection, q) for q in QUERIES}
    yield root, collection, spaces, baseline
    collection.close()


def _ranked(collection, query):
    return [(Path(h.path).name, round(h.score, 6)) for h in collection.search(query, k=10)]


def _margin(ranked, expected) -> float:
    """How far the expected photo's score stands above the best other photo's."""
    scores = dict(ranked)
    return scores.get(expected, -1.0) - max(score for name, score in ranked if name != expected)


def _image_segments(collection) -> int:
    return len(collection.catalog.segment_ids({"image", "video"}))


def test_attach_reembeds_every_image_segment_and_search_still_finds_the_right_photo(setup):
    root, collection, spaces, baseline = setup
    result = collection.attach_space(spaces["w1"])
    attached = collection.attached_space()
    assert attached.weight == 1.0 and result["embedded"] == 10
    assert len(collection.catalog.vector_ids(attached.name)) == _image_segments(collection) == 10
    assert len(collection.store(attached.name)) == 10
    info = collection.info()["space"]
    assert info["attached"] and info["vectors"] == 10 and info["source"] == str(spaces["w1"].resolve())
    # the stored learned vector is exactly the head applied to the stored native + shared vectors
    ids, learned = collection.catalog.vectors_for(attached.name, collection.catalog.segment_ids({"image"}))
    _, native = collection.catalog.vectors_for("image", ids)
    _, shared = collection.catalog.vectors_for("shared", ids)
    np.testing.assert_allclose(learned, attached.space.embed("image", np.concatenate([native, shared], 1)), atol=1e-6)
    margins = {"bridge": [], "learned": []}
    for query, expected in QUERIES.items():
        ranked = _ranked(collection, query)
        assert ranked[0][0] == expected, (query, ranked)
        assert ranked != baseline[query]  # the learned term changed the scores
        margins["bridge"].append(_margin(baseline[query], expected))
        margins["learned"].append(_margin(ranked, expected))
    # what the space was trained for: the right photo stands further above the rest than with the
    # bridge alone (a space whose heads learned nothing would blur it)
    assert np.mean(margins["learned"]) > np.mean(margins["bridge"]) + 0.05, margins
    hit = collection.search("a tabby cat", k=1)[0]
    assert "learned space" in hit.why
    # reattaching the same space is a no-op that keeps every vector
    assert collection.attach_space(spaces["w1"])["embedded"] == 0


def test_zero_weight_gives_results_identical_to_no_space(setup):
    root, collection, spaces, baseline = setup
    collection.attach_space(spaces["w0"])
    assert collection.attached_space().weight == 0.0
    # replacing w1 by w0 dropped the old space's vectors, index file and folder
    assert [s for s in collection.catalog.spaces() if s.startswith("learned-")] == [collection.attached_space().name]
    assert len(list((collection.dir / "spaces").iterdir())) == 1
    for query in QUERIES:
        assert _ranked(collection, query) == baseline[query]


def test_new_files_get_learned_vectors_and_detach_restores_the_original(setup):
    root, collection, spaces, baseline = setup
    collection.attach_space(spaces["w1"])
    extra = root / "photos" / "cat_copy.jpg"
    shutil.copyfile(root / "photos" / "cat.jpg", extra)
    try:
        assert collection.index(root / "photos").added == 1
        name = collection.attached_space().name
        assert len(collection.catalog.vector_ids(name)) == _image_segments(collection) == 11
        assert len(collection.store(name)) == 11
    finally:
        extra.unlink()
        collection.index(root / "photos")
    assert collection.detach_space() is True
    assert collection.attached_space() is None and collection.info()["space"] is None
    assert not any(s.startswith("learned-") for s in collection.catalog.spaces())
    assert not list((collection.dir / "vectors").glob("vectors-learned-*"))
    for query in QUERIES:
        assert _ranked(collection, query) == baseline[query]
    assert collection.detach_space() is False


def test_interrupted_attach_keeps_the_catalog_and_the_old_space_then_resumes(setup):
    root, collection, spaces, baseline = setup
    collection.attach_space(spaces["w0"])
    old = collection.attached_space().name
    counts, segments = collection.info()["counts"], collection.catalog.segment_count()

    class Crash(Exception):
        pass

    def crash_after_first_batch(done, total):
        if done >= 4:
            raise Crash

    with pytest.raises(Crash):
        collection.attach_space(spaces["w1"], progress=crash_after_first_batch, batch=4)
    # nothing lost, the old space still in use, the first batch of the new one committed
    assert collection.catalog.integrity_errors() == []
    assert collection.info()["counts"] == counts and collection.catalog.segment_count() == segments
    assert collection.attached_space().name == old
    assert len(collection.catalog.vector_ids(old)) == 10
    assert collection.info()["space"]["pending"]["source"] == str(spaces["w1"].resolve())
    for query in QUERIES:
        assert _ranked(collection, query) == baseline[query]
    # a fresh process (new Collection object) resumes: only the 6 missing segments are embedded
    collection.close()
    reopened = Collection(collection.dir)
    new_name = "learned-" + __import__("sensorium.space.learned", fromlist=["space_id"]).space_id(spaces["w1"])
    assert len(reopened.catalog.vector_ids(new_name)) == 4
    result = reopened.attach_space(spaces["w1"], batch=4)
    assert result["embedded"] == 6 and result["vectors"] == 10
    assert reopened.attached_space().name == new_name and reopened.info()["space"]["pending"] is None
    assert old not in reopened.catalog.spaces()
    assert _ranked(reopened, "a tabby cat with green eyes")[0][0] == "cat.jpg"
    reopened.detach_space()
    reopened.close()


def test_classify_with_a_space(setup):
    from sensorium.classification import classify

    root, collection, spaces, baseline = setup
    labels = ["cat", "rocket", "coffee", "motorcycle"]
    plain = classify(root / "photos" / "cat.jpg", labels, experts=collection.experts)
    zero = classify(root / "photos" / "cat.jpg", labels, experts=collection.experts, space=spaces["w0"])
    assert [(s.label, s.score) for s in zero.labels] == [(s.label, s.score) for s in plain.labels]
    learned = classify(root / "photos" / "cat.jpg", labels, experts=collection.experts, space=spaces["w1"])
    assert learned.best == "cat" and "learned space" in learned.method
    assert [s.score for s in learned.labels] != [s.score for s in plain.labels]


def test_an_attached_space_can_move_to_the_compressed_layout(setup):
    """`sensorium layout` on the attached space: same answers, new files' learned vectors land in
    the new layout, and detaching removes its files and its layout choice."""
    from sensorium.index import compressed
    from sensorium.index.compressed import CompressedStore
    from sensorium.index.layouts import LAYOUTS_KEY

    root, collection, spaces, baseline = setup
    collection.attach_space(spaces["w1"])
    name = collection.attached_space().name
    before = {query: [path for path, _ in _ranked(collection, query)] for query in QUERIES}
    moved = collection.set_layout(name, "compressed")
    assert moved["was"] == "hnsw" and moved["vectors"] == _image_segments(collection)
    assert isinstance(collection.store(name), CompressedStore)
    assert not list((collection.dir / "vectors").glob(f"vectors-{name}*"))
    assert {query: [path for path, _ in _ranked(collection, query)] for query in QUERIES} == before
    extra = root / "photos" / "cat_copy.jpg"
    shutil.copyfile(root / "photos" / "cat.jpg", extra)
    try:
        assert collection.index(root / "photos").added == 1
        assert len(collection.store(name)) == _image_segments(collection) == 11
    finally:
        extra.unlink()
        collection.index(root / "photos")
    assert collection.detach_space() is True
    assert not compressed.files(collection.dir / "vectors", name)
    assert name not in collection.catalog.meta(LAYOUTS_KEY, {})
    for query in QUERIES:
        assert _ranked(collection, query) == baseline[query]
