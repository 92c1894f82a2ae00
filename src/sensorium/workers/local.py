"""N worker processes on this machine, each with its own copy of the experts.

Spawned, not forked: the parent may already run onnxruntime and torch thread pools, which a fork
would copy in a broken state. Each worker gets an equal share of the cores (`worker_threads`), so N
workers do not run N x cores threads.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..errors import SensoriumError
from ..experts import ExpertConfig
from .process import embed_in_worker, start_worker

STARTUP_SECONDS = 300  # a worker imports torch and the readers before it answers


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Threads for each of `workers` processes sharing `cores` (at least one each)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))


class LocalPool:
    """`workers` spawned processes; see `sensorium.workers` for the pool interface."""

    died = (BrokenProcessPool,)

    def __init__(self, workers: int, config: ExpertConfig | None = None, threads: int | None = None):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self.width = 2 * workers  # one task queued behind each running one keeps every worker busy
        self.threads = threads or worker_threads(workers)
        self._config_json = (config or ExpertConfig()).to_json()
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        """A started pool, checked: a worker that cannot even start is an error here, not a failure
        recorded against every file (the usual cause: a script that starts indexing at import time,
        which each spawned worker then re-runs)."""
        executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=start_worker, initargs=(self._config_json, self.threads))
        try:
            executor.submit(os.getpid).result(timeout=STARTUP_SECONDS)
        except Exception as exc:  # noqa: BLE001 - broken pool, timeout: the same advice
            executor.shutdown(wait=False, cancel_futures=True)
            raise SensoriumError(
                f"the {self.workers} worker processes could not start ({type(exc).__name__}: "
                f"{(str(exc).strip().splitlines() or [''])[0]}); in a script, "
                "call Collection.index(..., workers=N) under `if __name__ == '__main__':`") from exc
        return executor

    def submit(self, entries: list[tuple[str, str]]) -> Future:
        return self._executor.submit(embed_in_worker, entries)

    def revive(self) -> None:
        """A worker died, so the executor is broken: start a fresh one (the models load again)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._start()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
