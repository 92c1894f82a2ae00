"""A collection's spaces switched to the compressed ANN layout and back (`sensorium layout`): search
finds the same things, indexing and forgetting keep working in the new layout, the old layout's
files are gone, and bad requests are named."""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.cli import make_media
from helpers.serve import run_cli

from sensorium import Collection
from sensorium.index import compressed
from sensorium.index.catalog import FileState, NewSegment
from sensorium.index.compressed import CompressedStore
from sensorium.index.vectors import VectorStore, shard_numbers

QUERIES = {"a cat": "kitty.jpg", "a cup of coffee": "mug.png", "a rocket launch": "rocket.png",
           "shopping at the market": "memo.wav", "hiking to a glacier": "note.md"}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("layouts") / "media")


def top(collection: Collection, text: str) -> str:
    return collection.search(text=text, k=1)[0].path.rsplit("/", 1)[-1]


def test_switching_to_compressed_and_back_keeps_every_answer(tmp_path, media):
    folder = tmp_path / "collection"
    with Collection(folder) as collection:
        assert collection.index(media).added == 5
        before = {text: top(collection, text) for text in QUERIES}
        assert before == QUERIES
        counts = {space: len(collection.store(space)) for space in collection.spaces()}

    listed = run_cli("layout", "-c", str(folder), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["space"]: row for row in json.loads(listed.stdout)}
    assert {row["layout"] for row in rows.values()} == {"hnsw"} and rows["shared"]["vectors"] == counts["shared"]

    switched = run_cli("layout", "shared", "compressed", "-c", str(folder))
    assert switched.returncode == 0, switched.stderr
    assert f"shared: hnsw -> compressed, {counts['shared']} vectors" in switched.stdout
    assert not shard_numbers(folder / "vectors", "shared")  # the old layout's files are deleted
    assert compressed.files(folder / "vectors", "shared")

    with Collection(folder) as collection:
        assert isinstance(collection.store("shared"), CompressedStore)
        assert isinstance(collection.store("image"), VectorStore)  # only the space asked for moved
        assert {text: top(collection, text) for text in QUERIES} == before
        (media / "recipe.md").write_text("# Bread\nKnead the dough, let it rise overnight, bake at 230 degrees.\n")
        try:
            assert collection.index(media).added == 1  # indexing writes into the compressed layout
            assert top(collection, "baking bread at home") == "recipe.md"
            forgotten = collection.forget([media / "recipe.md"])
            assert forgotten["items"] == 1
            assert top(collection, "baking bread at home") != "recipe.md"
        finally:
            (media / "recipe.md").unlink()

    back = run_cli("layout", "shared", "hnsw", "-c", str(folder), "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["was"] == "compressed"
    assert not compressed.files(folder / "vectors", "shared")
    with Collection(folder) as collection:
        assert {text: top(collection, text) for text in QUERIES} == before


def test_a_reader_follows_a_switch_made_by_another_process(tmp_path, media):
    """A service keeps its Collection open; `sensorium layout` in another process deletes the files
    it had open. Its next searches must use the new layout, with the same answers."""
    folder = tmp_path / "collection"
    with Collection(folder) as writer:
        writer.index(media)
    reader = Collection(folder)
    try:
        before = {text: top(reader, text) for text in QUERIES}
        assert isinstance(reader.store("shared"), VectorStore)
        switched = run_cli("layout", "shared", "compressed", "-c", str(folder))
        assert switched.returncode == 0, switched.stderr
        assert isinstance(reader.store("shared"), CompressedStore)
        assert {text: top(reader, text) for text in QUERIES} == before
        back = run_cli("layout", "shared", "hnsw", "-c", str(folder))
        assert back.returncode == 0, back.stderr
        assert isinstance(reader.store("shared"), VectorStore)
        assert {text: top(reader, text) for text in QUERIES} == before
    finally:
        reader.close()


def test_trained_compressed_space_answers_like_the_default(tmp_path, media, monkeypatch):
    """With a training threshold under the collection's size, search goes through IVF-PQ codes and
    exact re-ranking: the same answers, scores equal to the float32 cosines."""
    monkeypatch.setattr(compressed, "TRAIN_AT", 256)
    folder = tmp_path / "collection"
    with Collection(folder) as collection:
        collection.index(media)
        rng = np.random.default_rng(0)
        for number in range(300):  # enough other vectors to train on: unrelated notes
            vector = rng.standard_normal(384).astype(np.float32)
            collection.catalog.put_item(FileState(f"/elsewhere/{number}.md", 1, 1, f"h{number}"), "text", None, {},
                                        [NewSegment(None, None, "text", f"note {number}",
                                                    vectors={"shared": vector / np.linalg.norm(vector)})])
        collection.close()
    with Collection(folder) as collection:  # reopened: the stores take the new items from the catalog
        query = collection.experts.text.encode(["a rocket launch"])[0]
        default = collection.store("shared").search(query, 3)
        collection.set_layout("shared", "compressed")
        store = collection.store("shared")
        assert isinstance(store, CompressedStore) and store.trained
        found = store.search(query, 3)
        assert [i for i, _ in found] == [i for i, _ in default]
        assert np.allclose([s for _, s in found], [s for _, s in default], atol=1e-4)


def test_bad_layout_requests_are_named(tmp_path, media):
    folder = tmp_path / "collection"
    with Collection(folder) as collection:
        collection.index(media)
    wrong = run_cli("layout", "shared", "tiny", "-c", str(folder))
    assert wrong.returncode == 2 and "layout 'tiny': not one of hnsw, compressed" in wrong.stderr
    unknown = run_cli("layout", "pictures", "compressed", "-c", str(folder))
    assert unknown.returncode == 2 and "space 'pictures': not one of this collection's spaces" in unknown.stderr
    alone = run_cli("layout", "shared", "-c", str(folder))
    assert alone.returncode == 2 and "give a LAYOUT" in alone.stderr
    missing = run_cli("layout", "-c", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no collection here" in missing.stderr


def test_a_large_space_in_the_default_layout_gets_a_suggestion(tmp_path, media, monkeypatch):
    from sensorium.index import layouts

    folder = tmp_path / "collection"
    with Collection(folder) as collection:
        collection.index(media)
        assert collection.layout_notices() == []  # 5 files: far under the threshold
        monkeypatch.setattr(layouts, "SUGGEST_COMPRESSED_AT", 3)
        notices = collection.layout_notices()
        assert any(f"space 'shared' holds {len(collection.store('shared'))} vectors" in n
                   and "sensorium layout shared compressed" in n for n in notices), notices
        collection.set_layout("shared", "compressed")
        assert not any("'shared'" in n for n in collection.layout_notices())
