"""The SQLite catalog and the folder scanner: replacement, failures, lexical search, migrations."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sensorium.errors import ConfigError, ReadError
from sensorium.index.catalog import SCHEMA_VERSION, Catalog, FileState, NewSegment
from sensorium.index.scan import content_hash, scan

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COCO = DATA / "coco_mini"


def _vec(rng: np.random.Generator, dim: int = 384) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def catalog(tmp_path: Path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    yield cat
    cat.close()


def test_put_item_replaces_previous_version_completely(catalog: Catalog):
    rng = np.random.default_rng(0)
    state = FileState("/photos/cat.jpg", 1000, 111, "h1")
    first = [NewSegment(None, None, "image", "tabby cat on a sofa", [["tabby cat", 0.61]],
                        {"shared": _vec(rng), "image": _vec(rng, 1280)})]
    item_id, seg_ids, removed = catalog.put_item(state, "image", None, {"width": 640}, first)
    assert removed == [] and len(seg_ids) == 1

    second = [NewSegment(None, None, "image", "black dog", [], {"shared": _vec(rng)}),
              NewSegment(None, None, "ocr", "STOP sign", [], {"shared": _vec(rng)})]
    item2, seg_ids2, removed2 = catalog.put_item(FileState("/photos/cat.jpg", 2000, 222, "h2"), "image", None,
                                                 {}, second)
    assert removed2 == seg_ids
    assert not set(seg_ids2) & set(seg_ids), "segment ids must never be reused"
    assert catalog.item_state("/photos/cat.jpg") == FileState("/photos/cat.jpg", 2000, 222, "h2")
    assert catalog.counts() == {"image": 1} and catalog.segment_count() == 2
    assert catalog.lexical("tabby", 5) == []           # old text gone from FTS
    assert [i for i, _ in catalog.lexical("dog", 5)] == [seg_ids2[0]]
    ids, matrix = catalog.vectors("shared")
    assert ids.tolist() == seg_ids2 and matrix.dtype == np.float32 and matrix.shape == (2, 384)
    np.testing.assert_array_equal(matrix[0], second[0].vectors["shared"])
    assert catalog.vectors("image")[0].size == 0       # old image vector gone
    rows = catalog.segments(list(reversed(seg_ids2)) + [999_999])
    assert [r.id for r in rows] == list(reversed(seg_ids2))
    assert rows[0].source == "ocr" and rows[0].path == "/photos/cat.jpg" and rows[0].modality == "image"
    assert catalog.item("/photos/cat.jpg").meta == {}
    assert catalog.integrity_errors() == []


def test_a_bad_vector_leaves_nothing_half_written(catalog: Catalog):
    rng = np.random.default_rng(1)
    catalog.put_item(FileState("/a.txt", 1, 1, "h"), "text", None, {}, [NewSegment(None, None, "text", "kept", [],
                                                                                   {"shared": _vec(rng)})])
    with pytest.raises(ValueError, match="space 'shared'"):
        catalog.put_item(FileState("/a.txt", 2, 2, "h2"), "text", None, {},
                         [NewSegment(None, None, "text", "new", [], {"shared": _vec(rng, 100)})])
    with pytest.raises(ValueError, match="finite"):
        catalog.put_item(FileState("/a.txt", 2, 2, "h2"), "text", None, {},
                         [NewSegment(None, None, "text", "new", [], {"shared": np.full(384, np.nan)})])
    assert catalog.item_state("/a.txt").content_hash == "h"
    assert [r.text for r in catalog.segments(catalog.segment_ids())] == ["kept"]


def test_failure_keeps_the_good_item_and_success_clears_it(catalog: Catalog):
    rng = np.random.default_rng(2)
    good = FileState("/audio/talk.wav", 500, 10, "h")
    catalog.put_item(good, "audio", 3.5, {}, [NewSegment(0.0, 3.5, "speech", "hello world", [], {"shared": _vec(rng)})])
    broken = FileState("/audio/talk.wav", 12, 20, None)
    catalog.record_failure(broken, "audio", "truncated WAV header")
    catalog.record_failure(FileState("/audio/empty.wav", 0, 5, None), "audio", "zero-byte file")

    assert catalog.failures() == [("/audio/empty.wav", "zero-byte file"), ("/audio/talk.wav", "truncated WAV header")]
    assert catalog.counts() == {"audio": 1} and len(catalog.lexical("hello", 3)) == 1
    assert catalog.item_state("/audio/talk.wav") == broken  # unchanged broken file is not retried
    assert catalog.paths("/audio") == {"/audio/talk.wav", "/audio/empty.wav"}
    assert catalog.paths("/aud") == set()                     # a folder prefix, not a string prefix

    catalog.put_item(FileState("/audio/talk.wav", 600, 30, "h3"), "audio", 4.0, {}, [])
    assert catalog.failures() == [("/audio/empty.wav", "zero-byte file")]
    removed = catalog.remove_paths(["/audio/talk.wav", "/audio/empty.wav"])
    assert removed == [] and catalog.paths() == set() and catalog.failures() == []


def test_touch_updates_state_without_reembedding(catalog: Catalog):
    rng = np.random.default_rng(3)
    _, ids, _ = catalog.put_item(FileState("/n.md", 10, 1, "h"), "text", None, {},
                                 [NewSegment(None, None, "text", "note", [], {"shared": _vec(rng)})])
    catalog.touch("/n.md", 10, 99)
    assert catalog.item_state("/n.md") == FileState("/n.md", 10, 99, "h")
    assert catalog.vector_ids("shared").tolist() == ids


def test_lexical_never_raises_on_user_text_and_filters_by_modality(catalog: Catalog):
    catalog.put_item(FileState("/v.mp4", 1, 1, "a"), "video", 10.0, {},
                     [NewSegment(2.0, 4.0, "video-speech", "the cats are sleeping", [], {})])
    catalog.put_item(FileState("/p.jpg", 1, 1, "b"), "image", None, {},
                     [NewSegment(None, None, "image", "a cat; tabby", [], {})])
    for nasty in ['"', "cat AND", "(cat", "cat*", "NEAR(cat", "title:cat", "-cat", "^", "'; DROP TABLE items; --"]:
        catalog.lexical(nasty, 5)
    assert catalog.lexical("", 5) == [] and catalog.lexical("!!!", 5) == []
    hits = catalog.lexical("Cat", 5)                       # porter stemming: cats ~ cat, case-folded
    assert len(hits) == 2 and hits[0][1] >= hits[1][1]
    video = catalog.lexical("cat", 5, modalities=["video"])
    assert [catalog.segments([i])[0].path for i, _ in video] == ["/v.mp4"]
    assert catalog.segment_modalities([i for i, _ in hits]) == {hits[0][0]: catalog.segments([hits[0][0]])[0].modality,
                                                            hits[1][0]: catalog.segments([hits[1][0]])[0].modality}


@pytest.mark.skipif(not COCO.exists(), reason="shared COCO-mini data not present")
def test_lexical_search_over_real_coco_captions(catalog: Catalog):
    captions = json.loads((COCO / "captions_train2017.json").read_text())
    files = {im["id"]: im["file_name"] for im in captions["images"]}
    by_image: dict[int, list[str]] = {}
    for ann in captions["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["caption"])
    for image_id, texts in by_image.items():
        path = str(COCO / "images" / files[image_id])
        catalog.put_item(FileState(path, 1, 1, str(image_id)), "image", None, {},
                         [NewSegment(None, None, "caption", t, [], {}) for t in texts])
    giraffe_paths = {str(COCO / "images" / files[i]) for i, t in by_image.items() if any("giraffe" in c.lower() for c in t)}
    assert giraffe_paths, "data changed: expected giraffe captions"
    hits = catalog.lexical("giraffes", 100)
    rows = catalog.segments([i for i, _ in hits])
    assert all("giraffe" in r.text.lower() for r in rows)
    assert {r.path for r in rows} == giraffe_paths
    assert catalog.counts() == {"image": len(by_image)}


def test_meta_and_reopen_keep_schema(tmp_path: Path):
    db = tmp_path / "c.sqlite"
    with Catalog(db) as cat:
        cat.set_meta("spaces", {"shared": 384})
        cat.set_meta("spaces", {"shared": 384, "image": 1280})
    with Catalog(db) as cat:
        assert cat.meta("spaces") == {"shared": 384, "image": 1280}
        assert cat.meta("missing", 7) == 7
        assert cat.schema_version() == SCHEMA_VERSION
        assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_and_garbage_file_are_clear_errors(tmp_path: Path):
    db = tmp_path / "c.sqlite"
    Catalog(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="newer"):
        Catalog(db)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ReadError, match="junk.sqlite"):
        Catalog(junk)


# ---------------------------------------------------------------- scan


def test_scan_finds_readable_files_in_order_and_skips_hidden_and_collections(tmp_path: Path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "coll").mkdir()
    for name in ["b/2.jpg", "a/z.wav", "a/notes.MD", "a/skip.exe", ".hidden/x.jpg", "a/.secret.txt", "coll/c.txt",
                 "top.mp4"]:
        (tmp_path / name).write_bytes(b"x" * 3)
    (tmp_path / "coll" / "writer.lock").touch()
    os.symlink(tmp_path / "b", tmp_path / "link")
    os.symlink(tmp_path / "top.mp4", tmp_path / "a" / "linked.mp4")

    found = list(scan(tmp_path))
    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in found] == ["a/notes.MD", "a/z.wav", "b/2.jpg", "top.mp4"]
    assert [f.modality for f in found] == ["text", "audio", "image", "video"]
    assert all(f.size == 3 and f.mtime_ns > 0 for f in found)

    followed = [Path(f.path).relative_to(tmp_path).as_posix() for f in scan(tmp_path, follow_symlinks=True)]
    assert "a/linked.mp4" in followed and "b/2.jpg" in followed
    assert "link/2.jpg" not in followed  # same folder reached twice is scanned once
    assert [f.path for f in scan(tmp_path, exclude=[tmp_path / "a"])] == [str(tmp_path / "b/2.jpg"),
                                                                        str(tmp_path / "top.mp4")]
    with pytest.raises(ReadError):
        list(scan(tmp_path / "nope"))


def test_content_hash_tracks_content_not_mtime(tmp_path: Path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello" * 100_000)
    first = content_hash(f)
    os.utime(f, ns=(1, 1))
    assert content_hash(f) == first
    f.write_bytes(b"hello" * 99_999 + b"hellO")
    assert content_hash(f) != first
    with pytest.raises(OSError):
        content_hash(tmp_path / "gone.txt")


def test_cached_kind_ids_follow_every_change_from_any_connection(tmp_path: Path):
    rng = np.random.default_rng(3)
    writer, reader = Catalog(tmp_path / "catalog.sqlite"), Catalog(tmp_path / "catalog.sqlite")

    def put(path: str, kind: str, n: int) -> list[int]:
        segs = [NewSegment(float(i), float(i + 1), "speech", f"{path} {i}", [], {"shared": _vec(rng)}) for i in range(n)]
        return writer.put_item(FileState(path, 1, 1, path), kind, None, {}, segs)[1]

    audio = put("/a.wav", "audio", 3)
    put("/b.jpg", "image", 2)
    assert reader.segment_ids_cached({"audio"}).tolist() == audio
    assert reader.segment_ids_cached({"audio"}) is reader.segment_ids_cached({"audio"})  # reused, not re-queried
    more = put("/c.wav", "audio", 2)  # committed by another connection
    assert reader.segment_ids_cached({"audio"}).tolist() == audio + more
    writer.remove_paths(["/a.wav"])
    assert reader.segment_ids_cached({"audio"}).tolist() == more
    assert writer.segment_ids_cached({"audio", "image"}).tolist() == reader.segment_ids(["audio", "image"]).tolist()
    put("/d.jpg", "image", 1)  # this connection's own change
    assert writer.segment_ids_cached({"image"}).tolist() == writer.segment_ids(["image"]).tolist()
    writer.close()
    reader.close()


def _catalog_of_schema_1(path: Path) -> None:
    """A catalog as the first schema wrote it: OCR appended to an image's labels after "; text: "."""
    from sensorium.index.catalog import MIGRATIONS

    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute("INSERT INTO items (path, kind, size, mtime_ns, content_hash, duration, meta, indexed_at) "
               "VALUES ('/p/sign.jpg', 'image', 10, 1, 'h', NULL, '{}', 0)")
    db.execute("INSERT INTO segments (item_id, start, \"end\", source, text, labels) "
               "VALUES (1, NULL, NULL, 'image', 'street sign, pole; text: STOP AHEAD', '[]')")
    db.execute("INSERT INTO segment_text (rowid, text) VALUES (1, 'street sign, pole; text: STOP AHEAD')")
    db.execute("INSERT INTO items (path, kind, size, mtime_ns, content_hash, duration, meta, indexed_at) "
               "VALUES ('/p/memo.wav', 'audio', 10, 1, 'h2', 3.0, '{}', 0)")
    db.execute("INSERT INTO segments (item_id, start, \"end\", source, text, labels) "
               "VALUES (2, 0.0, 3.0, 'speech', 'buy milk; text: not OCR', '[]')")
    db.execute("INSERT INTO segment_text (rowid, text) VALUES (2, 'buy milk; text: not OCR')")
    db.commit()
    db.close()


def test_a_catalog_of_the_first_schema_migrates_ocr_words_and_the_modality_column(tmp_path: Path):
    _catalog_of_schema_1(tmp_path / "catalog.sqlite")
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        assert catalog.schema_version() == SCHEMA_VERSION
        sign, memo = catalog.segments([1, 2])
        assert (sign.text, sign.ocr, sign.words) == ("street sign, pole", "STOP AHEAD", [])
        assert (memo.text, memo.ocr) == ("buy milk; text: not OCR", "")  # only pictures had OCR packed in
        assert [sid for sid, _ in catalog.lexical("stop", 5)] == [1]  # still found by the words it reads
        assert catalog.counts() == {"audio": 1, "image": 1} and catalog.item("/p/sign.jpg").modality == "image"
        assert [sid for sid, _ in catalog.lexical("milk", 5, modalities=["audio"])] == [2]


def test_ocr_and_word_times_round_trip_and_ocr_is_searchable(catalog: Catalog):
    rng = np.random.default_rng(3)
    photo = NewSegment(None, None, "image", "street sign", [], {"shared": _vec(rng)}, ocr="NO PARKING")
    words = [(0.5, 0.9, "the"), (0.9, 1.4, "rocket"), (1.4, 2.0, "launched.")]
    speech = NewSegment(0.4, 2.1, "speech", "The rocket launched.", [], {"shared": _vec(rng)}, words=words)
    _, (photo_id,), _ = catalog.put_item(FileState("/p/sign.jpg", 1, 1, "a"), "image", None, {}, [photo])
    _, (speech_id,), _ = catalog.put_item(FileState("/p/memo.wav", 1, 1, "b"), "audio", 2.1, {}, [speech])
    photo_row, speech_row = catalog.segments([photo_id, speech_id])
    assert (photo_row.text, photo_row.ocr) == ("street sign", "NO PARKING")
    assert speech_row.words == words
    assert [sid for sid, _ in catalog.lexical("parking", 5)] == [photo_id]


def test_read_only_handle_reads_never_writes_and_refuses_an_old_schema(tmp_path: Path):
    rng = np.random.default_rng(4)
    with Catalog(tmp_path / "catalog.sqlite") as writer:
        segment = NewSegment(0.0, 1.0, "speech", "hello there", [], {"shared": _vec(rng)}, words=[(0.1, 0.4, "hello")])
        item_id, (segment_id,), _ = writer.put_item(FileState("/p/a.wav", 1, 1, "h"), "audio", 1.0, {}, [segment])
        reader = Catalog(tmp_path / "catalog.sqlite", readonly=True)
        item, rows = reader.item_detail(item_id)
        assert item.path == "/p/a.wav" and [r.id for r in rows] == [segment_id] and rows[0].words == [(0.1, 0.4, "hello")]
        assert reader.counts() == {"audio": 1} and reader.segment_count() == 1
        # a write through the read-only handle fails; the writer's later commits are seen
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.set_meta("x", 1)
        writer.put_item(FileState("/p/b.wav", 1, 1, "i"), "audio", 1.0, {}, [])
        assert reader.counts() == {"audio": 2}
        for unknown in (10**6, 2**63, -(2**63) - 1, 2**70):  # ids from URLs: unknown, never an OverflowError
            assert reader.item_by_id(unknown) is None and reader.item_detail(unknown) is None
        reader.close()
    _catalog_of_schema_1(tmp_path / "old.sqlite")
    with pytest.raises(ConfigError, match="migrate"):
        Catalog(tmp_path / "old.sqlite", readonly=True)
