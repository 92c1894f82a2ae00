"""How the suite shares the machine's cores among pytest-xdist workers."""
from __future__ import annotations

import os

from sensorium.cpu import THREADS_VARIABLE

ALL_CORES = "SENSORIUM_TEST_ALL_CORES"  # the cores before a worker was pinned (for a test that needs them all)


def share_the_cores_among_workers() -> None:
    """Under pytest-xdist (`make test` runs two workers where there are two cores or more), pin this worker
    to its own share of the cores, so torch, libgomp, onnxruntime, CTranslate2 and the CLI processes a test
    starts all see that share: trainings with a thread per core in each worker would fight for the cores,
    and a thread spinning at a barrier on a busy core costs more than it brings."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    if workers < 2 or not hasattr(os, "sched_setaffinity") or not worker.isdigit():
        return
    cores = sorted(os.sched_getaffinity(0))
    share = [core for index, core in enumerate(cores) if index % workers == int(worker) % workers]
    if share and len(share) < len(cores):
        os.environ[ALL_CORES] = ",".join(map(str, cores))
        os.sched_setaffinity(0, share)
        os.environ[THREADS_VARIABLE] = str(len(share))


def all_cores() -> set[int]:
    """Every core this run may use: those before this worker was pinned, else this process's own."""
    recorded = os.environ.get(ALL_CORES)
    if recorded:
        return {int(core) for core in recorded.split(",")}
    if hasattr(os, "sched_getaffinity"):  # Linux
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))
