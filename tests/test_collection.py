"""End-to-end: index a mixed folder (the demo's sample media plus malformed files), then search
in every direction, re-index incrementally, and survive deletions and failures."""
from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from sensorium import Collection
from sensorium.errors import CollectionLockedError, QueryError


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    from sensorium.demo.sample_data import build_sample_folder

    root = tmp_path_factory.mktemp("media")
    build_sample_folder(root)
    return root


@pytest.fixture(scope="module")
def indexed(media, tmp_path_factory):
    """The sample media plus a folder of malformed files, indexed once with sockets blocked."""
    from helpers.corpora import make_bad_corpus

    bad = media / "broken"
    bad.mkdir(exist_ok=True)
    expected_bad = make_bad_corpus(bad)
    directory = tmp_path_factory.mktemp("collection")
    with _no_network():
        collection = Collection(directory)
        report = collection.index(media)
    yield collection, report, expected_bad
    collection.close()


class _no_network:
    """Any attempt to open a connection fails loudly (Sensorium must never need one)."""

    def __enter__(self):
        self.saved = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo, socket.create_connection)

        def refuse(*args, **kwargs):
            raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.getaddrinfo = refuse
        socket.create_connection = refuse
        return self

    def __exit__(self, *exc):
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo, socket.create_connection = self.saved


def _names(hits):
    return [Path(h.path).name for h in hits]


def test_index_reports_every_bad_file_and_keeps_every_good_one(indexed, media):
    collection, report, expected_bad = indexed
    failed = {Path(p).name: reason for p, reason in report.failed}
    bad_names = {name for name, what in expected_bad.items()}
    # every malformed file is reported with a reason, and nothing else failed
    assert bad_names <= set(failed) | _skipped_unsupported(media), (failed, bad_names)
    for name in failed:
        assert name in bad_names, f"a good file failed: {name}: {failed[name]}"
    for reason in failed.values():
        assert reason and len(reason) > 5
    counts = collection.info()["counts"]
    assert counts.get("image", 0) >= 4 and counts.get("audio", 0) >= 2
    assert counts.get("video", 0) >= 1 and counts.get("text", 0) >= 2
    failures = {Path(f["path"]).name for f in collection.info()["failures"]}
    assert set(failed) <= failures


def _skipped_unsupported(media: Path) -> set[str]:
    from sensorium.modality import modality_of

    return {p.name for p in (media / "broken").iterdir() if modality_of(p) is None}


def test_text_finds_the_cat_photo(indexed):
    collection, _, _ = indexed
    hits = collection.search(text="a cat", modality="image", k=3)
    assert hits and "cat" in Path(hits[0].path).name
    assert hits[0].modality == "image" and hits[0].why
    assert all(h.modality == "image" for h in hits)


def test_image_query_finds_the_same_photo(indexed, media, tmp_path):
    from PIL import Image

    collection, _, _ = indexed
    source = next(media.rglob("coffee*"))
    query = tmp_path / "query.png"
    with Image.open(source) as image:
        w, h = image.size
        image.convert("RGB").crop((w // 10, h // 10, w - w // 10, h - h // 10)).transpose(Image.FLIP_LEFT_RIGHT).save(query)
    hits = collection.search(image=query, modality="image", k=3)
    assert hits and Path(hits[0].path).name == source.name


def test_spoken_query_finds_the_video_moment(indexed, tmp_path):
    from sensorium.experts.tts import save_wav, synthesize

    collection, _, _ = indexed
    query = tmp_path / "q.wav"
    save_wav(synthesize("the rocket launch"), query)
    hits = collection.search(audio=query, modality="video", k=1)
    assert hits and hits[0].modality == "video"
    assert hits[0].start is not None and hits[0].end > hits[0].start
    assert hits[0].start >= 3.0, "the rocket is in the second half of the sample video"


def test_text_finds_the_voice_memo(indexed):
    collection, _, _ = indexed
    hits = collection.search(text="when is the team meeting", modality="audio", k=1)
    assert hits and hits[0].modality == "audio" and "meeting" in hits[0].why.lower()
    assert hits[0].start is not None


def test_reindex_skips_unchanged_and_follows_changes(indexed, media):
    collection, first, _ = indexed
    again = collection.index(media)
    assert again.added == 0 and again.updated == 0 and again.removed == 0
    assert again.unchanged == first.scanned

    note = media / "notes" / "extra-note.txt"
    note.parent.mkdir(exist_ok=True)
    note.write_text("Sourdough starter: feed it equal weights of rye flour and water every morning.")
    assert collection.index(media).added == 1
    assert Path(collection.search(text="how often to feed the sourdough starter", modality="text", k=1)[0].path).name == "extra-note.txt"

    note.write_text("Gardening: plant the tulip bulbs in October, ten centimetres deep.")
    later = time.time() + 5
    os.utime(note, (later, later))
    assert collection.index(media).updated == 1
    assert Path(collection.search(text="when to plant tulips", modality="text", k=1)[0].path).name == "extra-note.txt"

    note.unlink()
    assert collection.index(media).removed == 1
    assert all(Path(h.path).name != "extra-note.txt" for h in collection.search(text="tulip bulbs", k=20))


def test_second_writer_is_refused(indexed, media):
    from sensorium.index.lock import WriterLock

    collection, _, _ = indexed
    with WriterLock(collection.dir):
        other = Collection(collection.dir)
        with pytest.raises(CollectionLockedError):
            other.index(media)
        other.close()


def test_bad_queries_raise_clear_errors(indexed, tmp_path):
    collection, _, _ = indexed
    with pytest.raises(QueryError, match="give a text query"):
        collection.search()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(QueryError, match="broken.jpg"):
        collection.search(image=broken)
    with pytest.raises(QueryError, match="modality"):
        collection.search(text="x", modality="smell")


def test_a_collection_in_many_shards_indexes_updates_and_searches(tmp_path, monkeypatch):
    """Shards of 8 vectors: notes spread over many files, then deletions and an edit, as one index."""
    from sensorium.index import vectors as vectors_module

    monkeypatch.setattr(vectors_module, "MIN_SHARD_VECTORS", 1)
    monkeypatch.setattr(vectors_module, "SHARD_BYTES", 8 * 4 * 384)  # 8 shared-space vectors per shard
    notes = tmp_path / "notes"
    notes.mkdir()
    topics = ["sourdough bread recipe", "hiking boots for the alps", "tax return deadline", "piano lesson at five",
              "the cat needs her vaccine", "fixing the bicycle brakes", "tomato seedlings on the balcony",
              "flight to lisbon on monday", "birthday present for grandma", "oil change for the car"]
    for i in range(40):
        (notes / f"note{i:02d}.txt").write_text(f"Note {i}: {topics[i % 10]}, item {i}.\n", encoding="utf-8")
    collection = Collection(tmp_path / "col")
    assert collection.index(notes).added == 40
    shards = list((tmp_path / "col" / "vectors").glob("vectors-shared*.usearch"))
    assert len(shards) >= 5
    best = Path(collection.search(text="flight to lisbon", k=1)[0].path).name
    assert best in {"note07.txt", "note17.txt", "note27.txt", "note37.txt"}

    for i in range(0, 40, 2):  # half the notes go, one is rewritten
        (notes / f"note{i:02d}.txt").unlink()
    (notes / "note01.txt").write_text("Note 1: the violin needs new strings.\n", encoding="utf-8")
    report = collection.index(notes)
    assert (report.removed, report.updated) == (20, 1)
    store = collection.store("shared")
    assert store.ids().tolist() == collection.catalog.vector_ids("shared").tolist()
    sizes = [shard.size() for shard in store._current()]  # the sparse shards left were merged
    assert sum(1 for size in sizes if size) <= -(-sum(sizes) // store.capacity) + 1, sizes
    assert Path(collection.search(text="violin strings", k=1)[0].path).name == "note01.txt"
    found = {Path(hit.path).name for hit in collection.search(text="tax return deadline", k=40)}
    assert not any(f"note{i:02d}.txt" in found for i in range(0, 40, 2))
    collection.close()
    reopened = Collection(tmp_path / "col")  # a new process's view of the saved shards
    assert len(reopened.store("shared")) == len(reopened.catalog.vector_ids("shared"))
    reopened.close()
