"""Indexing with workers: N local processes (and, in tests/test_workers_ray.py, Ray actors) read and
embed, one writer stores. The collection they make must equal the one a single process makes, a
worker killed mid-run must lose nothing, and a file that kills its worker must fail alone."""
from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.cli import run, shared_home
from helpers.workers import PHOTOS, assert_same_collection, snapshot

from sensorium import Collection
from sensorium.errors import ConfigError
from sensorium.workers import worker_threads

def test_threads_are_shared_between_workers():
    assert worker_threads(2, cores=2) == 1 and worker_threads(2, cores=16) == 8 and worker_threads(4, cores=2) == 1


def test_two_local_workers_store_what_one_process_stores(worker_media, one_process_index, tmp_path):
    directory = tmp_path / "col"
    with Collection(directory) as col:
        report = col.index(worker_media, workers=2)
        assert report.added == PHOTOS + 5 and [Path(p).name for p, _ in report.failed] == ["broken.png"]
        assert report.encoded_items["image"] == PHOTOS + 3
        again = col.index(worker_media, workers=2)  # the incremental rules are the same (no pool started)
        assert again.unchanged == PHOTOS + 6 and again.added == 0 and again.seconds < 1.0
    assert_same_collection(snapshot(directory, worker_media), one_process_index)


def test_a_worker_killed_mid_run_loses_nothing(worker_media, one_process_index, tmp_path):
    killed: list[int] = []

    def kill_a_worker(done: int, total: int, path: str) -> None:
        if not killed:
            children = multiprocessing.active_children()
            assert children, "no worker processes to kill"
            os.kill(children[0].pid, signal.SIGKILL)
            killed.append(children[0].pid)

    directory = tmp_path / "col"
    with Collection(directory) as col:
        report = col.index(worker_media, progress=kill_a_worker, workers=2)
    assert killed
    assert report.added == PHOTOS + 5 and [Path(p).name for p, _ in report.failed] == ["broken.png"]
    assert_same_collection(snapshot(directory, worker_media), one_process_index)


class Died(Exception):
    pass


class PoisonPool:
    """The pool interface run in threads here, where a task holding `poison` 'kills its worker'."""

    died = (Died,)

    def __init__(self, poison: str, width: int = 2):
        from sensorium.experts import Experts
        from sensorium.space.embed import Embedder

        self.width, self.poison, self.revived = width, poison, 0
        self._embedder = Embedder(Experts())
        self._threads = ThreadPoolExecutor(width)

    def _work(self, entries):
        from sensorium.indexing import embed_entries

        if any(Path(path).name == self.poison for path, _ in entries):
            raise Died("worker killed")
        return embed_entries(self._embedder, entries)

    def submit(self, entries) -> Future:
        return self._threads.submit(self._work, entries)

    def revive(self) -> None:
        self.revived += 1

    def close(self) -> None:
        self._threads.shutdown()


def test_a_file_that_kills_its_worker_fails_alone(worker_media, one_process_index, tmp_path):
    pool = PoisonPool("photo-03.jpg")
    directory = tmp_path / "col"
    try:
        with Collection(directory) as col:
            report = col.index(worker_media, pool=pool)
    finally:
        pool.close()
    failed = dict((Path(p).name, reason) for p, reason in report.failed)
    assert sorted(failed) == ["broken.png", "photo-03.jpg"]
    assert "worker process died" in failed["photo-03.jpg"]
    assert report.added == PHOTOS + 4 and pool.revived >= 2
    ours = snapshot(directory, worker_media)
    expected = {name: entry for name, entry in one_process_index["items"].items() if name != "photo-03.jpg"}
    assert sorted(ours["items"]) == sorted(expected)
    assert ("photo-03.jpg", failed["photo-03.jpg"]) in ours["failures"]


def test_cli_workers(worker_media, tmp_path):
    done = run("index", str(worker_media), "-c", str(tmp_path / "col"), "--workers", "2", "--json", env_home=shared_home())
    assert done.returncode == 3, done.stderr  # documented: some file failed (broken.png)
    import json

    report = json.loads(done.stdout)
    assert report["added"] == PHOTOS + 5 and [Path(f["path"]).name for f in report["failed"]] == ["broken.png"]
    bad = run("index", str(worker_media), "-c", str(tmp_path / "col2"), "--workers", "0", env_home=shared_home())
    assert bad.returncode == 2 and "--workers" in bad.stderr


def test_ray_missing_is_explained(monkeypatch):
    import sys

    from sensorium.workers.ray_actors import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'sensorium\[ray\]'"):
        import_ray()


class BrokenOnSubmitPool(PoisonPool):
    """A pool found broken when a task is handed to it (its worker died between two looks)."""

    def __init__(self):
        super().__init__(poison="")
        self.refused = 0

    def submit(self, entries) -> Future:
        if self.refused == 0:
            self.refused += 1
            raise Died("the pool broke before this submit")
        return super().submit(entries)


def test_a_pool_broken_at_submit_is_revived(worker_media, one_process_index, tmp_path):
    pool = BrokenOnSubmitPool()
    try:
        with Collection(tmp_path / "col") as col:
            report = col.index(worker_media, pool=pool)
    finally:
        pool.close()
    assert pool.refused == 1 and pool.revived == 1
    assert report.added == PHOTOS + 5 and [Path(p).name for p, _ in report.failed] == ["broken.png"]
    assert_same_collection(snapshot(tmp_path / "col", worker_media), one_process_index)
