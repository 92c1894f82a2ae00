"""Indexing on Ray: a real local Ray (2 CPUs, no dashboard), one per module. The Ray-indexed
collection must equal the one a single process makes, and an actor killed mid-run loses nothing."""
from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'sensorium[ray]' (CI installs it)")

from helpers.workers import PHOTOS, assert_same_collection, snapshot  # noqa: E402

from sensorium import Collection  # noqa: E402
from sensorium.workers import RayPool  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_indexes_what_one_process_indexes(local_ray, worker_media, one_process_index, tmp_path):
    directory = tmp_path / "col"
    with Collection(directory) as col:
        report = col.index(worker_media, ray=True, workers=2)
    assert ray.is_initialized(), "a Ray the caller started must stay up"
    assert report.added == PHOTOS + 5 and [Path(p).name for p, _ in report.failed] == ["broken.png"]
    assert_same_collection(snapshot(directory, worker_media), one_process_index)


def test_an_actor_killed_mid_run_loses_nothing(local_ray, worker_media, one_process_index, tmp_path):
    pool = RayPool(workers=2)
    killed: list = []

    def kill_an_actor(done: int, total: int, path: str) -> None:
        if not killed:
            killed.append(pool.actors[0])
            ray.kill(pool.actors[0], no_restart=True)

    directory = tmp_path / "col"
    try:
        with Collection(directory) as col:
            report = col.index(worker_media, progress=kill_an_actor, pool=pool)
    finally:
        pool.close()
    assert killed and killed[0] not in pool.actors, "the dead actor was not replaced"
    assert report.added == PHOTOS + 5 and [Path(p).name for p, _ in report.failed] == ["broken.png"]
    assert_same_collection(snapshot(directory, worker_media), one_process_index)


def test_ray_exports_what_one_process_exports(local_ray, worker_media, tmp_path):
    from sensorium.export import export_vectors

    pq = pytest.importorskip("pyarrow.parquet")
    here, there = tmp_path / "here.parquet", tmp_path / "ray.parquet"
    export_vectors(worker_media, here)
    report = export_vectors(worker_media, there, ray=True, workers=2)
    assert [Path(p).name for p, _ in report.failed] == ["broken.png"]
    key = ["path", "segment", "space"]
    ours = sorted(pq.read_table(there).to_pylist(), key=lambda r: [r[k] for k in key])
    theirs = sorted(pq.read_table(here).to_pylist(), key=lambda r: [r[k] for k in key])
    assert [[r[k] for k in key] for r in ours] == [[r[k] for k in key] for r in theirs]
    for a, b in zip(ours, theirs):
        assert max(abs(x - y) for x, y in zip(a["vector"], b["vector"])) < 2e-4
