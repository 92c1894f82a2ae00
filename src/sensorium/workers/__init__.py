"""Embedding files in other processes while one writer keeps the catalog.

`sensorium index --workers N` runs the experts in N local processes (`LocalPool`); `--ray [ADDRESS]`
runs them as Ray actors on a local Ray or an existing cluster (`RayPool`). A pool takes a list of
(path, modality) entries and returns, through a `concurrent.futures.Future`, one
`sensorium.indexing.FileWork` per file: its segments and vectors, or the reason it failed. The
indexer (`Indexer.run(..., pool=...)`) stores each file in its own catalog transaction, as it does
without a pool, so the incremental rules, failure reports and crash safety do not change: a worker
that dies takes nothing stored with it, and its files are redone.

Every pool has the same four members: `width` (tasks to keep in flight), `submit(entries)`,
`died` (the exception types that mean a worker process is gone), `revive()` (replace dead workers)
and `close()`.
"""
from __future__ import annotations

from .local import LocalPool, worker_threads

__all__ = ["LocalPool", "RayPool", "check_workers", "make_pool", "worker_threads"]


def check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")


def make_pool(workers: int | None, ray: str | bool | None, config=None):
    """The pool a caller asked for, or None to embed in its own process: Ray actors when `ray` is
    True (a local Ray started for it) or an address (a running cluster), N of them or one per CPU;
    N local processes when `workers` > 1. The caller closes it."""
    check_workers(workers)
    if ray not in (None, False):
        from .ray_actors import RayPool

        return RayPool(None if ray is True else str(ray), workers, config)
    if workers is not None and workers > 1:
        return LocalPool(workers, config)
    return None


def __getattr__(name: str):
    if name == "RayPool":  # Ray is an optional extra: imported only when asked for
        from .ray_actors import RayPool

        return RayPool
    raise AttributeError(name)
