"""VectorStore: exact below the threshold, HNSW above, filters, persistence, reconciliation."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sensorium.errors import ConfigError, ReadError
from sensorium.index import vectors as vectors_module
from sensorium.index.catalog import Catalog, FileState, NewSegment
from sensorium.index.vectors import VectorStore, id_filter, index_path

ROOT = Path(__file__).resolve().parents[1]


def clustered(n: int, dim: int = 384, seed: int = 0, centers: int = 32) -> np.ndarray:
    """Gaussian-mixture unit vectors: embeddings cluster by topic, they are not uniform noise."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = c[rng.integers(0, centers, n)] + rng.standard_normal((n, dim)).astype(np.float32) * np.float32(0.35 / np.sqrt(dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact(ids: np.ndarray, data: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[int]:
    scores = data @ q
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [int(ids[i]) for i in order if np.isfinite(scores[i])]


def test_small_store_is_exact_and_scores_are_cosine(tmp_path: Path):
    data = clustered(500, seed=1)
    ids = np.arange(10, 1010, 2, dtype=np.int64)
    store = VectorStore(tmp_path, "shared", 384)
    store.add(ids, data)
    queries = clustered(20, seed=2)
    for q in queries:
        hits = store.search(q, 10)
        assert [i for i, _ in hits] == exact(ids, data, q, 10)
        best = int(np.where(ids == hits[0][0])[0][0])
        assert hits[0][1] == pytest.approx(float(data[best] @ q), abs=1e-5)
        assert all(a[1] >= b[1] for a, b in zip(hits, hits[1:]))
    assert len(store) == 500 and store.ids().tolist() == ids.tolist()
    rare = ids % 50 == 0  # 10 of 500 allowed: the filter must widen, not stop at the first batch
    for q in queries[:5]:
        hits = store.search(q, 5, allowed=lambda keys: keys % 50 == 0)
        assert [i for i, _ in hits] == exact(ids, data, q, 5, rare)


def test_hnsw_path_recall_and_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(vectors_module, "EXACT_BELOW", 0)  # force the ANN path on a quick size
    data = clustered(2500, seed=3)
    ids = np.arange(1, 2501, dtype=np.int64) * 7
    store = VectorStore(tmp_path, "shared", 384)
    store.add(ids, data)
    rng = np.random.default_rng(4)  # queries near stored items, as real queries are
    queries = data[rng.choice(2500, 60, replace=False)] + rng.standard_normal((60, 384)).astype(np.float32) * 0.01
    recall = np.mean([len({i for i, _ in store.search(q, 10)} & set(exact(ids, data, q, 10))) / 10 for q in queries])
    assert recall >= 0.95

    rare = (ids % 97) == 0  # about 1% allowed: the search must widen until it has k or is exhausted
    allowed = lambda keys: (keys % 97) == 0  # noqa: E731
    for q in queries[:10]:
        hits = store.search(q, 10, allowed=allowed)
        assert len(hits) == 10 and all(i % 97 == 0 for i, _ in hits)
        assert len({i for i, _ in hits} & set(exact(ids, data, q, 10, rare))) >= 9
    by_array = store.search(queries[0], 10, allowed=ids[rare])  # an id array works like a predicate
    assert by_array == store.search(queries[0], 10, allowed=allowed)
    assert VectorStore(tmp_path, "empty", 384).search(queries[0], 3, allowed=np.array([], dtype=np.int64)) == []
    only_three = lambda keys: np.isin(keys, ids[:3])  # noqa: E731
    assert sorted(i for i, _ in store.search(queries[0], 10, allowed=only_three)) == sorted(ids[:3].tolist())


def test_id_filter_is_exact_membership():
    allowed = id_filter(np.array([9, 3, 5, 3]))
    assert allowed(np.array([1, 3, 4, 5, 9, 10, 2**40])).tolist() == [False, True, False, True, True, False, False]
    assert id_filter(np.array([], dtype=np.int64))(np.array([1, 2])).tolist() == [False, False]


def test_add_replaces_remove_drops_and_save_reopens_as_view(tmp_path: Path):
    data = clustered(300, seed=5)
    ids = np.arange(300, dtype=np.int64)
    writer = VectorStore(tmp_path, "shared", 384)
    writer.add(ids, data)
    writer.add(ids[:1], data[299:300])          # id 0 now holds vector 299
    writer.remove([299, 298, 123456])            # unknown ids are ignored
    writer.save()
    assert not list(tmp_path.glob("*.tmp-*"))

    reader = VectorStore(tmp_path, "shared", 384)
    hits = reader.search(data[299], 2)
    assert hits[0][0] == 0 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert 298 not in {i for i, _ in reader.search(data[298], 300)}
    assert len(reader) == 298 and all(s.viewing for s in reader._current())  # readers memory-map the files

    writer.add(np.array([5000]), data[298:299])  # a writer saves a newer file: the reader follows it
    writer.save()
    assert reader.search(data[298], 1)[0][0] == 5000


def test_sync_with_repairs_the_index_from_the_catalog(tmp_path: Path):
    rng = np.random.default_rng(6)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    data = clustered(40, seed=7)
    seg_ids = []
    for i in range(20):
        _, new, _ = catalog.put_item(FileState(f"/f{i}.txt", 1, 1, "h"), "text", None, {},
                                     [NewSegment(None, None, "text", f"note {i}", [], {"shared": data[2 * i]}),
                                      NewSegment(None, None, "text", f"more {i}", [], {"shared": data[2 * i + 1]})])
        seg_ids += new
    store = VectorStore(tmp_path, "shared", 384)
    store.add(np.array(seg_ids[:10]), data[:10])
    store.add(np.array([900_001, 900_002]), rng.standard_normal((2, 384)))   # ids the catalog never had
    assert store.sync_with(catalog) == (30, 2)
    assert store.ids().tolist() == catalog.vector_ids("shared").tolist()
    assert store.search(data[33], 1)[0][0] == seg_ids[33]
    assert store.sync_with(catalog) == (0, 0)
    catalog.close()


def test_bad_inputs_are_clear_errors(tmp_path: Path):
    store = VectorStore(tmp_path, "shared", 384)
    assert store.search(np.ones(384, np.float32), 5) == [] and len(store) == 0
    with pytest.raises(ValueError, match="384"):
        store.add(np.array([1]), np.ones((1, 12), np.float32))
    with pytest.raises(ValueError, match="384"):
        store.search(np.ones(12, np.float32), 5)
    with pytest.raises(ConfigError, match="metric"):
        VectorStore(tmp_path, "shared", 384, metric="hamming")
    store.add(np.array([1]), np.ones((1, 384), np.float32))
    store.save()
    with pytest.raises(ConfigError, match="dimensions"):
        VectorStore(tmp_path, "shared", 128).search(np.ones(128, np.float32), 1)
    index_path(tmp_path, "broken").write_bytes(b"\0garbage" * 64)
    with pytest.raises(ReadError, match="vectors-broken"):
        len(VectorStore(tmp_path, "broken", 384))


def test_opening_a_store_does_not_import_the_ann_library(tmp_path: Path):
    code = ("import sys; from sensorium.index import Catalog, VectorStore; "
            f"s = VectorStore({str(tmp_path)!r}, 'shared', 384); print('usearch' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("threads", [1, 3])  # shards searched one after another, or at once
def test_shards_keep_one_in_memory_and_search_like_one_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             threads: int):
    monkeypatch.setattr(vectors_module, "SEARCH_THREADS", threads)
    data = clustered(1050, seed=8)
    ids = np.arange(1050, dtype=np.int64) * 3 + 1
    writer = VectorStore(tmp_path, "shared", 384, capacity=200)
    for start in range(0, 1050, 70):  # as the indexer adds: a file's segments at a time, saving now and then
        writer.add(ids[start:start + 70], data[start:start + 70], new=True)
        shards = writer._current()
        assert shards[-1].loaded_for_writing  # only the newest shard is in memory ...
        assert all(s.index is None for s in shards[:-1])  # ... full ones are not even mapped while indexing
        if start % 210 == 0:
            writer.save()
    writer.save()
    assert sorted(p.name for p in tmp_path.glob("*.usearch")) == [
        "vectors-shared.1.usearch", "vectors-shared.2.usearch", "vectors-shared.3.usearch",
        "vectors-shared.4.usearch", "vectors-shared.5.usearch", "vectors-shared.usearch"]
    assert len(writer) == 1050 and writer.ids().tolist() == ids.tolist()

    reader = VectorStore(tmp_path, "shared", 384)  # any capacity reads any shards
    queries = clustered(15, seed=9)
    for q in queries:  # below EXACT_BELOW every shard is searched exhaustively: exact overall
        assert [i for i, _ in reader.search(q, 10)] == exact(ids, data, q, 10)
        mask = ids % 7 == 0
        assert [i for i, _ in reader.search(q, 5, allowed=lambda k: k % 7 == 0)] == exact(ids, data, q, 5, mask)
    monkeypatch.setattr(vectors_module, "EXACT_BELOW", 0)
    recall = np.mean([len({i for i, _ in reader.search(d, 10)} & set(exact(ids, data, d, 10))) / 10
                      for d in data[::70]])
    assert recall >= 0.95


def test_removals_from_full_shards_apply_on_save_and_empty_shards_go(tmp_path: Path):
    data = clustered(600, seed=10)
    ids = np.arange(600, dtype=np.int64)
    writer = VectorStore(tmp_path, "shared", 384, capacity=200)
    writer.add(ids, data)
    writer.save()
    reader = VectorStore(tmp_path, "shared", 384)
    assert len(reader) == 600

    writer.remove(ids[:200])          # all of shard 0 ...
    writer.remove(ids[250:260])       # ... and part of shard 1
    assert len(writer) == 390 and writer.search(data[5], 1)[0][0] not in set(range(200))
    assert writer.search(data[255], 1)[0][0] != 255
    assert len(reader) == 600         # others see saved state only
    writer.save()
    assert len(reader) == 390 and reader.search(data[255], 1)[0][0] != 255
    assert (tmp_path / "vectors-shared.usearch").exists()  # the first file always stays (older versions read it)

    writer.remove(ids[200:400])                 # shard 1 emptied: its file is deleted
    writer.add(np.array([255]), data[255:256])  # an id removed from a full shard comes back in the newest
    writer.save()
    assert not (tmp_path / "vectors-shared.1.usearch").exists()
    assert sorted(reader.ids().tolist()) == [255] + list(range(400, 600))
    assert reader.search(data[255], 1)[0] == (255, pytest.approx(1.0, abs=1e-5))


def test_a_single_file_from_before_shards_is_the_first_shard(tmp_path: Path):
    data = clustered(700, seed=11)
    old = VectorStore(tmp_path, "shared", 384, capacity=10_000)  # one file, as before shards
    old.add(np.arange(500), data[:500])
    old.save()
    writer = VectorStore(tmp_path, "shared", 384, capacity=300)  # now over capacity: left as it is
    writer.add(np.arange(500, 700), data[500:])
    writer.save()
    assert sorted(p.name for p in tmp_path.glob("*.usearch")) == ["vectors-shared.1.usearch", "vectors-shared.usearch"]
    assert VectorStore(tmp_path, "shared", 384).ids().tolist() == list(range(700))
    with pytest.raises(ConfigError, match="name"):
        VectorStore(tmp_path, "shared.1", 384)


def test_sparse_shards_are_merged_after_removals(tmp_path: Path):
    data = clustered(1000, seed=12)
    ids = np.arange(1000, dtype=np.int64)
    writer = VectorStore(tmp_path, "shared", 384, capacity=200)
    writer.add(ids, data)
    writer.save()
    assert len(shard_files := sorted(tmp_path.glob("*.usearch"))) == 5, shard_files
    gone = (ids % 10 < 7) & (ids < 800)  # a user deleted most files of the first four shards
    writer.remove(ids[gone])
    writer.save()
    kept = ids[~gone]  # 240 + 200 = 440 vectors: 3 shards are enough, 4 allowed, 5 were there
    reader = VectorStore(tmp_path, "shared", 384)
    sizes = [shard.size() for shard in reader._current()]
    assert sum(sizes) == 440 and sum(1 for size in sizes if size) <= 4, sizes
    assert reader.ids().tolist() == kept.tolist()  # each id once, none lost
    for q in clustered(10, seed=13):
        assert [i for i, _ in reader.search(q, 10)] == exact(kept, data[kept], q, 10)


def test_a_crash_while_merging_loses_nothing_that_sync_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    data = clustered(600, seed=14)
    seg_ids = []
    for item in range(60):
        segs = [NewSegment(float(j), float(j + 1), "frame", "", [], {"shared": data[item * 10 + j]}) for j in range(10)]
        seg_ids += catalog.put_item(FileState(f"/m/{item}.mp4", 1, 1, str(item)), "video", None, {}, segs)[1]
    seg_ids = np.asarray(seg_ids, dtype=np.int64)
    writer = VectorStore(tmp_path / "vectors", "shared", 384, capacity=100)
    writer.sync_with(catalog)
    writer.save()
    doomed = [f"/m/{item}.mp4" for item in range(45) if item % 5]  # most items of the first shards
    gone = np.asarray(catalog.remove_paths(doomed), dtype=np.int64)
    assert len(gone) == 360
    writer.remove(gone)

    def crash(*args, **kwargs):  # the process dies after a merged shard's file is deleted
        raise KeyboardInterrupt
    monkeypatch.setattr(VectorStore, "add", crash)
    with pytest.raises(KeyboardInterrupt):
        writer.save()
    monkeypatch.undo()
    reader = VectorStore(tmp_path / "vectors", "shared", 384)
    kept = np.setdiff1d(seg_ids, gone)
    assert len(reader) < len(kept)  # the merged shard's vectors are missing from the files ...
    added, removed = reader.sync_with(catalog)  # ... and the catalog puts them back, once each
    assert added > 0 and removed == 0
    assert reader.ids().tolist() == kept.tolist()
