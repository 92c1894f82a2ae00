"""Forgetting: after `sensorium forget FILE` (or deleting the file and indexing again), no byte of its
transcript, OCR or note text and no byte of any of its vectors is left anywhere in the collection
folder: catalog, write-ahead log, vector shards and thumbnails included.

Each test first checks the traces ARE there (so it can fail), then that they are gone, and that the
other files are still found."""
from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sensorium import Collection
from sensorium.index.catalog import Catalog, FileState, NewSegment
from sensorium.index.vectors import VectorStore


def traces(folder: Path, needles: list[bytes]) -> dict[str, list[int]]:
    """For every file under `folder`, which needles (by position) occur in its bytes."""
    found = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            data = path.read_bytes()
            hits = [i for i, needle in enumerate(needles) if needle in data]
            if hits:
                found[str(path.relative_to(folder))] = hits
    return found


def item_needles(collection: Collection, path: Path) -> list[bytes]:
    """The distinctive words of an item's stored text (each word of 6+ letters) and every vector's bytes."""
    catalog = collection.catalog
    item, segments = catalog.item_detail(catalog.item(str(path)).id)
    words = {w.lower() for s in segments for w in re.findall(r"[A-Za-z]{6,}", f"{s.text} {s.ocr}")}
    needles = [w.encode() for w in sorted(words)]
    ids = [s.id for s in segments]
    for space in catalog.spaces():
        _, matrix = catalog.vectors_for(space, ids)
        needles += [np.ascontiguousarray(row, dtype="<f4").tobytes() for row in matrix]
    assert len(needles) > len(words) > 0, (words, len(needles))
    return needles


@pytest.fixture()
def indexed(tmp_path):
    from helpers.cli import make_media

    from sensorium.serve.media import ThumbnailCache

    media = make_media(tmp_path / "media")
    (media / "secret.md").write_text("Quarterly salaries: Bartholomew earns considerably more than Wilhelmina.\n")
    folder = tmp_path / "collection"
    collection = Collection(folder)
    report = collection.index(media)
    assert not report.failed and report.added == 6, report.as_dict()
    thumbnails = ThumbnailCache(folder / "thumbnails")
    for name, modality in (("memo.wav", "audio"), ("secret.md", "text"), ("kitty.jpg", "image")):
        thumbnails.get(media / name, modality)
    yield collection, media, folder
    collection.close()


def test_forget_leaves_no_byte_of_a_recording_or_a_note(indexed):
    from helpers.serve import run_cli

    collection, media, folder = indexed
    needles = {name: item_needles(collection, media / name) for name in ("memo.wav", "secret.md")}
    for name, wanted in needles.items():
        assert traces(folder, wanted), f"{name}: no trace before forgetting, so the check below proves nothing"
    spoken = [n.decode() for n in needles["memo.wav"] if len(n) < 40]
    assert {"market", "tomorrow"} & set(spoken), spoken  # Whisper heard the memo
    collection.close()

    result = run_cli("forget", str(media / "memo.wav"), str(media / "secret.md"), "-c", str(folder))
    assert result.returncode == 0, result.stderr
    assert "forgot 2 files" in result.stdout and "2 thumbnails" in result.stdout, result.stdout
    assert "still on disk" in result.stderr  # they come back at the next index unless moved: said so

    for name, wanted in needles.items():
        assert traces(folder, wanted) == {}, f"{name}: traces left after forget"
    with Collection(folder) as reopened:
        assert reopened.catalog.item(str(media / "memo.wav")) is None
        assert not reopened.catalog.integrity_errors()
        assert reopened.search(text="a cat", k=1)[0].path == str(media / "kitty.jpg")
        assert not any(hit.path.endswith("secret.md") for hit in reopened.search(text="salaries", k=10))
        assert len(list((folder / "thumbnails").glob("*.jpg"))) == 1  # the photo's stays

    nothing = run_cli("forget", str(media / "memo.wav"), "-c", str(folder))
    assert nothing.returncode == 2 and "nothing stored" in nothing.stderr


def test_a_deleted_file_leaves_no_trace_after_the_next_index(indexed):
    collection, media, folder = indexed
    needles = item_needles(collection, media / "secret.md")
    changed = item_needles(collection, media / "note.md")
    assert traces(folder, needles) and traces(folder, changed)
    (media / "secret.md").unlink()
    (media / "note.md").write_text("# Trip\nWe sailed around the archipelago instead.\n")  # the old text must go too

    report = collection.index(media)
    assert report.removed == 1 and report.updated == 1, report.as_dict()
    assert traces(folder, needles) == {}
    assert traces(folder, changed) == {}
    assert collection.search(text="sailing between islands", k=1)[0].path == str(media / "note.md")


def test_forget_leaves_no_byte_in_the_compressed_layout(indexed):
    """The same promise when the spaces keep their vectors in the compressed layout (float32 rows on
    disk beside IVF-PQ codes): the forgotten rows are zeroed, the codes dropped."""
    collection, media, folder = indexed
    for space in collection.spaces():
        collection.set_layout(space, "compressed")
    needles = item_needles(collection, media / "secret.md")
    rows = [path for path in (folder / "vectors").iterdir() if ".rows." in path.name]
    assert rows and any(needle in path.read_bytes() for needle in needles for path in rows)
    collection.forget([media / "secret.md"])
    assert traces(folder, needles) == {}
    assert collection.search(text="a cat", k=1)[0].path == str(media / "kitty.jpg")


# ------------------------------------------------------------------ the storage layers alone

def test_catalog_scrub_erases_deleted_text_from_database_and_log(tmp_path):
    db = tmp_path / "catalog.sqlite"
    rng = np.random.default_rng(0)
    with Catalog(db) as catalog:
        for number in range(300):
            words = " ".join(f"w{n}" for n in rng.integers(0, 500, 10))
            if number == 137:
                words += " zanzibarquokka"
            catalog.put_item(FileState(f"/notes/{number}.md", 1, 1, "h"), "text", None, {}, [
                NewSegment(None, None, "text", words, vectors={"shared": rng.normal(size=16).astype(np.float32)})])
        vector = catalog.vectors_for("shared", [138])[1][0].tobytes()
        assert traces(tmp_path, [b"zanzibarquokka", vector])
        catalog.remove_paths(["/notes/137.md"])
        assert catalog.scrub()
        assert traces(tmp_path, [b"zanzibarquokka", vector]) == {}
        assert catalog.lexical("w1 w2", k=5)  # the others are still searchable
        assert sqlite3.connect(db).execute("PRAGMA secure_delete").fetchone() is not None


@pytest.mark.parametrize("share", [0.1, 0.8])  # filled in place, and rebuilt (most vectors removed)
def test_vector_store_overwrites_removed_vectors(tmp_path, share):
    rng = np.random.default_rng(1)
    store = VectorStore(tmp_path, "shared", 32, capacity=400)  # several shards
    vectors = rng.normal(size=(1000, 32)).astype(np.float32)
    store.add(np.arange(1000), vectors, new=True)
    store.save()
    alive = np.ones(1000, dtype=bool)
    for round in range(3):  # removals in rounds, with additions between: every round must be clean
        gone = rng.choice(np.flatnonzero(alive), int(share * alive.sum() / 3), replace=False)
        alive[gone] = False
        store.remove(gone)
        store.save()
        assert traces(tmp_path, [vectors[i].tobytes() for i in np.flatnonzero(~alive)]) == {}, round
        extra = np.arange(5000 + 10 * round, 5000 + 10 * round + 10)
        store.add(extra, rng.normal(size=(10, 32)).astype(np.float32), new=True)
        store.save()
    reopened = VectorStore(tmp_path, "shared", 32, capacity=400)
    keep = np.flatnonzero(alive)[:50]
    assert np.mean([reopened.search(vectors[i], 1)[0][0] == i for i in keep]) >= 0.98
    assert set(np.flatnonzero(alive)) <= set(reopened.ids().tolist())


def test_the_service_forgets_an_item_with_the_token(indexed):
    from fastapi.testclient import TestClient

    from sensorium.serve.app import LOOPBACK_HOSTS, create_app

    collection, media, folder = indexed
    needles = item_needles(collection, media / "secret.md")
    item_id = collection.catalog.item(str(media / "secret.md")).id
    collection.close()
    app = create_app(folder, [media], allowed_hosts=LOOPBACK_HOSTS)
    token = (folder / "serve.token").read_text().strip()
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        assert client.delete(f"/api/v1/items/{item_id}").status_code == 401
        foreign = client.delete(f"/api/v1/items/{item_id}", headers={"Authorization": f"Bearer {token}",
                                                                     "Origin": "https://evil.example"})
        assert foreign.status_code == 403
        reply = client.delete(f"/api/v1/items/{item_id}", headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"id": item_id, "path": "secret.md", "forgotten": True, "segments": 1, "thumbnails": 1}
        assert client.get(f"/api/v1/items/{item_id}").status_code == 404
        hits = client.get("/api/v1/search", params={"q": "salaries of Bartholomew", "k": 10}).json()["results"]
        assert all(hit["name"] != "secret.md" for hit in hits)
    assert traces(folder, needles) == {}
