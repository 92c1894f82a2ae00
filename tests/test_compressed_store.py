"""The compressed ANN layout (IVF-PQ codes in memory, float32 rows on disk, exact re-ranking): it
finds what exact search finds, persists, follows a writer, forgets removed vectors on disk, and
survives a crash between an append and a save."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sensorium.index.compressed import CompressedStore, cells, files, pq_bytes
from sensorium.index.rows import RowFile

DIM = 32


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Points around 40 centres, each with its own sub-structure, so neighbours are well defined."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    leaves = np.repeat(centres, 10, axis=0) + 0.5 * rng.standard_normal((400, DIM)).astype(np.float32)
    points = leaves[rng.integers(0, 400, n)] + 0.2 * rng.standard_normal((n, DIM)).astype(np.float32)
    return points * rng.lognormal(0, 0.25, (n, 1)).astype(np.float32)  # norms vary: the store is cosine


def exact(data: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    return ids[np.argsort(-scores)[:k]].tolist()


def recall(store, data, ids, queries, k=10, allowed=None) -> float:
    hits = 0
    for query in queries:
        keep = np.ones(len(ids), bool) if allowed is None else np.isin(ids, allowed)
        truth = set(exact(data[keep], ids[keep], query, k))
        hits += len(truth & {i for i, _ in store.search(query, k, allowed=allowed)})
    return hits / (k * len(queries))


@pytest.fixture
def data():
    points = clustered(6000)
    ids = np.arange(1000, 7000, dtype=np.int64)  # segment ids are not row numbers
    return points, ids


def test_code_size_and_cells_follow_the_dimension_and_count():
    assert pq_bytes(384) == 192 and pq_bytes(1280) == 256 and pq_bytes(512) == 256 and pq_bytes(32) == 16
    assert pq_bytes(100) == 50
    assert cells(1_000_000) == 2048 and cells(10_000_000) == 8192
    assert cells(2000) <= 2000 // 39
    assert CompressedStore(Path("."), "shared", DIM, train_at=3).train_at == 256  # PQ needs 256 to train


def test_small_space_is_searched_exactly_and_scores_are_cosines(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM, train_at=10_000)
    store.add(ids[:500], points[:500], new=True)
    store.save()
    assert not store.trained and len(store) == 500
    query = clustered(1, seed=9)[0]
    hits = store.search(query, 10)
    assert [i for i, _ in hits] == exact(points[:500], ids[:500], query, 10)
    unit = points[:500] / np.linalg.norm(points[:500], axis=1, keepdims=True)
    by_id = dict(zip(ids[:500].tolist(), unit @ (query / np.linalg.norm(query))))
    assert all(abs(score - by_id[i]) < 1e-5 for i, score in hits)


def test_trained_index_finds_what_exact_search_finds_and_reopens(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    store.add(ids, points, new=True)
    store.save()
    assert store.trained
    queries = clustered(50, seed=5)
    assert recall(store, points, ids, queries) >= 0.9
    reopened = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    assert reopened.trained and len(reopened) == len(ids)
    assert [reopened.search(q, 10) for q in queries[:5]] == [store.search(q, 10) for q in queries[:5]]
    # codes and row ids are all a search process holds: far less than the float32 vectors
    index_file = next(p for p in files(tmp_path, "shared") if ".ivfpq." in p.name)
    rows_file = next(p for p in files(tmp_path, "shared") if ".rows." in p.name)
    assert index_file.stat().st_size < rows_file.stat().st_size / 2


def test_filters_return_only_allowed_ids_and_their_best(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    store.add(ids, points, new=True)
    store.save()
    allowed = ids[::20]  # 5% of the ids: the candidate list must widen
    queries = clustered(30, seed=6)
    for query in queries:
        found = [i for i, _ in store.search(query, 10, allowed=allowed)]
        assert len(found) == 10 and set(found) <= set(allowed.tolist())
    assert recall(store, points, ids, queries, allowed=allowed) >= 0.9
    odd = store.search(queries[0], 5, allowed=lambda keys: keys % 2 == 1)
    assert len(odd) == 5 and all(i % 2 == 1 for i, _ in odd)


def test_reader_follows_a_writers_saves(tmp_path, data):
    points, ids = data
    writer = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    writer.add(ids[:3000], points[:3000], new=True)
    writer.save()
    reader = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    assert len(reader) == 3000
    writer.add(ids[3000:], points[3000:], new=True)
    assert len(reader) == 3000  # not committed yet
    writer.save()
    assert len(reader) == len(ids)
    assert reader.search(points[5500], 1)[0][0] == ids[5500]


def test_removed_vectors_are_never_found_and_their_bytes_are_zeroed(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    store.add(ids, points, new=True)
    store.save()
    gone = ids[100:200]
    store.remove(gone)
    assert store.search(points[150], 1)[0][0] != ids[150]  # at once, before the save
    store.save()
    reopened = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    assert not set(reopened.ids().tolist()) & set(gone.tolist())
    assert all(reopened.search(points[i], 3)[0][0] not in gone for i in range(100, 200, 10))
    raw = b"".join(p.read_bytes() for p in files(tmp_path, "shared") if ".rows." in p.name)
    unit = points[150] / np.linalg.norm(points[150])
    assert unit.astype("<f4").tobytes() not in raw
    assert (points[300] / np.linalg.norm(points[300])).astype("<f4").tobytes() in raw  # kept ones are there


def test_replacing_an_id_keeps_one_vector(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM, train_at=10_000)
    store.add(ids[:10], points[:10], new=True)
    store.add(ids[:1], points[500:501])
    assert len(store) == 10 and store.search(points[500], 1)[0][0] == ids[0]


def test_most_rows_removed_rewrites_the_row_file_and_drops_to_exact(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    store.add(ids, points, new=True)
    store.save()
    store.remove(ids[:5000])
    store.save()
    assert len(store) == 1000 and not store.trained  # under half of train_at: exact again
    rows = next(p for p in files(tmp_path, "shared") if ".rows." in p.name)
    assert rows.stat().st_size == 1000 * DIM * 4
    query = points[5500]
    assert [i for i, _ in store.search(query, 10)] == exact(points[5000:], ids[5000:], query, 10)


def test_growth_retrains_the_cells(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM, train_at=1000)
    store.add(ids[:1000], points[:1000], new=True)
    store.save()
    manifest = json.loads(store.manifest_path.read_text())
    assert manifest["trained_on"] == 1000
    store.add(ids[1000:], points[1000:], new=True)
    store.save()
    manifest = json.loads(store.manifest_path.read_text())
    assert manifest["trained_on"] == len(ids)  # grew 6x > 4x: retrained on all of them
    assert recall(store, points, ids, clustered(20, seed=7)) >= 0.9


class FakeCatalog:
    def __init__(self, ids, points):
        self.ids, self.points = ids, points

    def vector_ids(self, space):
        return self.ids

    def vectors_for(self, space, wanted):
        rows = np.searchsorted(self.ids, wanted)
        return self.ids[rows], self.points[rows]


def test_a_crash_before_save_loses_the_appended_rows_and_sync_restores_them(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    store.add(ids[:3000], points[:3000], new=True)
    store.save()
    store.add(ids[3000:], points[3000:], new=True)  # appended to the row file, never committed
    del store  # the process dies
    again = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    assert len(again) == 3000
    added, removed = again.sync_with(FakeCatalog(ids[500:], points[500:]))
    assert (added, removed) == (3000, 500)
    again.save()
    rows = next(p for p in files(tmp_path, "shared") if ".rows." in p.name)
    assert rows.stat().st_size == 6000 * DIM * 4  # the torn appends were cut off before re-adding
    assert np.array_equal(CompressedStore(tmp_path, "shared", DIM).ids(), ids[500:])


def test_row_file_reads_any_order_and_ignores_a_torn_row(tmp_path):
    rows = RowFile(tmp_path / "r.f32", 4)
    values = np.arange(40, dtype=np.float32).reshape(10, 4)
    assert rows.append(values) == 0
    with open(tmp_path / "r.f32", "ab") as handle:
        handle.write(b"\x00" * 6)  # half a row: a crash mid-append
    assert len(rows) == 10
    asked = np.array([7, 2, 2, 3, 9, 0])
    assert np.array_equal(rows.read(asked), values[asked])
    with pytest.raises(IndexError, match="r.f32"):
        rows.read(np.array([10]))


def test_bad_manifest_dimension_is_named(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM)
    store.add(ids[:10], points[:10], new=True)
    store.save()
    from sensorium.errors import ReadError
    with pytest.raises(ReadError, match="compressed-shared.json"):
        len(CompressedStore(tmp_path, "shared", 64))


def test_a_reader_that_finds_a_generation_deleted_reads_the_next(tmp_path, data, monkeypatch):
    points, ids = data
    writer = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    writer.add(ids[:3000], points[:3000], new=True)
    writer.save()
    reader = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    writer.add(ids[3000:], points[3000:], new=True)
    writer.save()
    from sensorium.index import compressed
    real_load, calls = np.load, []

    def vanishing(path, *args, **kwargs):  # the first read finds the file already deleted
        calls.append(path)
        if len(calls) == 1:
            raise FileNotFoundError(path)
        return real_load(path, *args, **kwargs)
    monkeypatch.setattr(compressed.np, "load", vanishing)
    assert len(reader) == len(ids) and len(calls) == 2


def test_a_filter_that_allows_nothing_returns_nothing(tmp_path, data):
    points, ids = data
    store = CompressedStore(tmp_path, "shared", DIM, train_at=2000)
    store.add(ids, points, new=True)
    store.save()
    assert store.search(points[0], 10, allowed=np.array([], dtype=np.int64)) == []
    assert store.search(points[0], 10, allowed=np.array([ids[7]]))[0][0] == ids[7]
