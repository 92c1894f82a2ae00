"""Relocatable collections: files are stored relative to named roots, so a moved media folder is
re-attached, never re-embedded (by indexing it at its new place, by opening a collection that moved
with it, or by `sensorium roots set`), and a catalog written before roots existed migrates.

Every end-to-end test moves a real folder of indexed media and checks the same segments (ids and
vectors) answer at the new place."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sensorium import Collection
from sensorium.errors import ConfigError
from sensorium.index.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog, FileState, NewSegment
from sensorium.index.roots import FILESYSTEM, Root, RootMap, check_name, derive_roots

NOTES = {
    "glacier.md": "We hiked to the glacier and camped by the lake under the stars.",
    "bread.txt": "Buy bread, apples and coffee at the market on Saturday morning.",
    "engine.txt": "The car engine makes a rattling noise when it is cold.",
}


def make_photos(folder: Path) -> Path:
    """Three notes and a photo in a subfolder: what a user's media folder holds, small enough to index fast."""
    (folder / "2024").mkdir(parents=True)
    for name, text in NOTES.items():
        (folder / name).write_text(text + "\n")
    from skimage import data

    Image.fromarray(data.coffee()).resize((200, 150)).save(folder / "2024" / "mug.jpg")
    return folder


def stored_vectors(collection: Collection) -> dict[int, np.ndarray]:
    ids, matrix = collection.catalog.vectors("shared")
    return {int(i): row.copy() for i, row in zip(ids, matrix)}


def top_path(collection: Collection, text: str) -> str:
    return collection.search(text=text, k=1)[0].path


@pytest.fixture()
def indexed(tmp_path):
    """~/photos indexed into a collection kept elsewhere; returns (collection folder, media folder, vectors)."""
    media = make_photos(tmp_path / "home" / "photos")
    folder = tmp_path / "collection"
    with Collection(folder) as collection:
        report = collection.index(media)
        assert report.added == 4 and not report.failed, report.as_dict()
        assert [root["name"] for root in collection.roots()] == ["photos"]
        vectors = stored_vectors(collection)
    return folder, media, vectors


# ------------------------------------------------------------------ end to end, by moving folders

def test_indexing_the_new_place_of_a_moved_folder_reattaches_it(indexed, tmp_path):
    folder, media, vectors = indexed
    moved = tmp_path / "disk" / "pictures"
    moved.parent.mkdir()
    shutil.move(media, moved)

    with Collection(folder) as collection:
        (missing,) = collection.root_notices()
        assert "root 'photos' is missing" in missing and "sensorium roots set photos" in missing
        assert collection.roots()[0]["missing"] is True
        report = collection.index(moved)
        assert report.added == report.updated == report.removed == 0 and report.unchanged == 4, report.as_dict()
        assert len(report.notices) == 1 and "moved from" in report.notices[0] and "nothing re-embedded" in report.notices[0]
        assert [(r["name"], r["path"], r["missing"]) for r in collection.roots()] == [("photos", str(moved), False)]
        assert collection.root_notices() == []
        after = stored_vectors(collection)
        assert after.keys() == vectors.keys() and all(np.array_equal(after[i], vectors[i]) for i in vectors)
        assert top_path(collection, "hiking near a glacier lake") == str(moved / "glacier.md")
        assert top_path(collection, "a cup of coffee") == str(moved / "2024" / "mug.jpg")


def test_a_collection_moved_with_its_media_follows_them_on_open(tmp_path):
    project = tmp_path / "project"
    media = make_photos(project / "photos")
    with Collection(project / "collection") as collection:
        collection.index(media)
        ids = collection.catalog.segment_ids().tolist()
    shutil.move(project, tmp_path / "renamed")  # a renamed home, a copied project folder

    with Collection(tmp_path / "renamed" / "collection") as collection:
        assert collection.roots()[0]["path"] == str(tmp_path / "renamed" / "photos")
        assert len(collection.notices) == 1 and "moved from" in collection.notices[0]
        assert top_path(collection, "shopping for apples") == str(tmp_path / "renamed" / "photos" / "bread.txt")
        report = collection.index(tmp_path / "renamed" / "photos")
        assert report.unchanged == 4 and report.added == 0 and collection.catalog.segment_ids().tolist() == ids


def test_a_folder_holding_other_files_is_not_mistaken_for_a_moved_root(indexed, tmp_path):
    folder, media, _ = indexed
    shutil.rmtree(media)
    other = tmp_path / "other"
    other.mkdir()
    (other / "glacier.md").write_text("Different words of another length.\n")
    with Collection(folder) as collection:
        report = collection.index(other)
        assert report.notices == [] and report.added == 1
        names = {root["name"]: root for root in collection.roots()}
        assert names["photos"]["missing"] and names["photos"]["items"] == 4  # nothing stored was lost
        assert not names["other"]["missing"]


def test_cli_roots_set_reattaches_and_search_and_service_find_the_files(indexed, tmp_path):
    from helpers.serve import run_cli

    folder, media, _ = indexed
    moved = tmp_path / "usb" / "photos-2024"
    moved.parent.mkdir()
    shutil.move(media, moved)

    listed = run_cli("roots", "list", "-c", str(folder))
    assert listed.returncode == 0, listed.stderr
    assert "photos" in listed.stdout and "missing" in listed.stdout and "sensorium roots set photos" in listed.stderr

    wrong = run_cli("roots", "set", "photos", str(tmp_path / "nowhere"), "-c", str(folder))
    assert wrong.returncode == 2 and "not a folder" in wrong.stderr

    done = run_cli("roots", "set", "photos", str(moved), "-c", str(folder))
    assert done.returncode == 0, done.stderr
    assert f"{media} -> {moved} (4 of 4 sampled files found there); nothing re-embedded" in done.stdout

    found = run_cli("search", "a rattling car engine", "-c", str(folder), "-k", "1")
    assert found.returncode == 0 and str(moved / "engine.txt") in found.stdout and found.stderr == "", found

    served = _serve_startup_line(folder)  # without --root, the service offers the folders indexed from
    assert f"(roots: {moved});" in served, served

    from fastapi.testclient import TestClient

    from sensorium.serve.app import LOOPBACK_HOSTS, create_app

    app = create_app(folder, [moved], allowed_hosts=LOOPBACK_HOSTS)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        hits = client.get("/api/v1/search", params={"q": "a rattling car engine", "k": 1}).json()["results"]
        assert hits[0]["path"] == "engine.txt"
        media_reply = client.get(f"/api/v1/items/{hits[0]['item_id']}/media")
        assert media_reply.status_code == 200 and media_reply.content == (moved / "engine.txt").read_bytes()


def _serve_startup_line(collection: Path) -> str:
    """The line `sensorium serve` prints before it listens (then it is stopped)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import sensorium

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = str(Path(sensorium.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, "-c", "from sensorium.cli import main; main()", "serve", "-c",
                                str(collection), "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        # stop it once it listens: an interrupt that lands while it is still importing and building the
        # app raced with start-up once in a fresh-clone CI run (the process outlived the 60 s wait)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        return line
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def test_cli_roots_set_refuses_overlapping_roots(indexed, tmp_path):
    from helpers.serve import run_cli

    folder, media, _ = indexed
    with Collection(folder) as collection:
        collection.index(make_photos(tmp_path / "music"))
    refused = run_cli("roots", "set", "photos", str(tmp_path / "music" / "2024"), "-c", str(folder))
    assert refused.returncode == 1 and "already has files" in refused.stderr, refused.stderr
    bad_name = run_cli("roots", "set", "a/b", str(media), "-c", str(folder))
    assert bad_name.returncode == 2 and "root name" in bad_name.stderr


# ------------------------------------------------------------------ the catalog's rules

def test_root_map_stores_each_path_under_its_longest_root():
    roots = RootMap([Root("home", "/home/ann"), Root("photos", "/home/ann/photos"), Root(FILESYSTEM, "/")])
    assert roots.stored("/home/ann/photos/2024/a.jpg") == "photos/2024/a.jpg"
    assert roots.stored("/home/ann/notes/b.md") == "home/notes/b.md"
    assert roots.stored("/home/annie/c.md") == "filesystem/home/annie/c.md"  # a prefix of the name is not a folder
    for path in ("/home/ann/photos/2024/a.jpg", "/home/ann/notes/b.md", "/etc/x"):
        assert roots.absolute(roots.stored(path)) == path
    assert roots.new_name("/mnt/home/ann") == "ann" and roots.new_name("/x/photos") == "photos-2"
    assert RootMap().stored("/a/b") is None
    for bad in ("", "a/b", "..", "x" * 256):
        with pytest.raises(ValueError):
            check_name(bad)


def test_roots_derived_for_old_catalogs():
    assert derive_roots(["/home/ann/photos/a.jpg", "/home/ann/photos/2024/b.jpg"]) == ["/home/ann/photos"]
    assert derive_roots(["/home/ann/a.jpg", "/mnt/disk/music/b.mp3", "/mnt/disk/music/x/c.mp3"]) == [
        "/home/ann", "/mnt/disk/music"]
    assert derive_roots([]) == []


def _catalog_of_schema_2(path: Path, paths: list[str]) -> None:
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        db.executescript(script)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (2)")
    for number, item in enumerate(paths, 1):
        db.execute("INSERT INTO items (path, modality, size, mtime_ns, content_hash, duration, meta, indexed_at) "
                   "VALUES (?, 'text', 10, 1, 'h', NULL, '{}', 0)", (item,))
        db.execute("INSERT INTO segments (item_id, start, \"end\", source, text) VALUES (?, NULL, NULL, 'text', ?)",
                   (number, f"words of {item}"))
    db.execute("INSERT INTO failures (path, modality, size, mtime_ns, content_hash, reason, failed_at) "
               "VALUES ('/mnt/disk/music/bad.mp3', 'audio', 1, 1, NULL, 'truncated', 0)")
    db.commit()
    db.close()


def test_a_catalog_with_absolute_paths_migrates_to_roots(tmp_path):
    db = tmp_path / "catalog.sqlite"
    paths = ["/home/ann/notes/a.md", "/mnt/disk/music/b.txt", "/mnt/disk/music/live/c.txt"]
    _catalog_of_schema_2(db, paths)
    with Catalog(db) as catalog:
        assert catalog.schema_version() == SCHEMA_VERSION
        assert [(r.name, r.path) for r in catalog.roots()] == [("music", "/mnt/disk/music"), ("notes", "/home/ann/notes")]
        assert catalog.paths() == {*paths, "/mnt/disk/music/bad.mp3"}
        assert [row.path for row in catalog.segments([1, 2, 3])] == paths
        assert catalog.failures() == [("/mnt/disk/music/bad.mp3", "truncated")]
        assert not catalog.integrity_errors()
        catalog.set_root("music", "/media/usb/music")
        assert catalog.item("/media/usb/music/live/c.txt").id == 3 and catalog.item("/mnt/disk/music/b.txt") is None
    stored = sqlite3.connect(db).execute("SELECT path FROM items ORDER BY id").fetchall()
    assert stored == [("notes/a.md",), ("music/b.txt",), ("music/live/c.txt",)]  # relative to their roots


def _put(catalog: Catalog, path: str) -> int:
    item_id, _, _ = catalog.put_item(FileState(path, 1, 1, "h"), "text", None, {},
                                     [NewSegment(None, None, "text", path, vectors={"shared": np.ones(4)})])
    return item_id


def test_nested_roots_move_with_their_parent_and_overlaps_are_refused(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as catalog:
        catalog.add_root("/data/photos")
        _put(catalog, "/data/photos/a.jpg")
        catalog.add_root("/data")  # a parent indexed after its child: the child keeps its files
        _put(catalog, "/data/notes/n.md")
        assert catalog.add_root("/data/notes") .name == "data"  # inside a root: that root
        before, moved = catalog.set_root("data", "/mnt/data")
        assert before.path == "/data" and sorted((r.name, r.path) for r in moved) == [
            ("data", "/mnt/data"), ("photos", "/mnt/data/photos")]
        assert catalog.paths() == {"/mnt/data/photos/a.jpg", "/mnt/data/notes/n.md"}

        catalog.add_root("/other")
        _put(catalog, "/other/inbox/x.md")
        with pytest.raises(ConfigError, match="holds root 'photos'"):
            catalog.set_root("other", "/mnt")
        with pytest.raises(ConfigError, match="already has files"):
            catalog.set_root("photos", "/other/inbox")
        with pytest.raises(ConfigError, match="inside root 'other'"):
            catalog.set_root("new", "/other/inbox")
        catalog.set_root("photos", "/mnt/data/photos/old")  # into its own subtree: moves, never collides
        assert catalog.item("/mnt/data/photos/old/a.jpg") is not None
        assert not catalog.integrity_errors()
