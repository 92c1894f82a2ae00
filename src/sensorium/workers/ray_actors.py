"""Ray actors that embed files: a local Ray started for the run, or an existing cluster.

Each actor loads the experts once (`start_worker`) and embeds the batches of (path, modality) it is
handed; only paths go out and only segments and vectors come back, so the files must be readable at
the same path on every node (one machine, or a shared file system). Ray is an optional extra:
`pip install 'sensorium[ray]'`.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import Future

from ..errors import ConfigError
from ..experts import ExpertConfig
from .process import embed_in_worker, start_worker

INSTALL_HINT = "Ray is not installed: pip install 'sensorium[ray]'"
OPENMP_THREADS = "OMP_NUM_THREADS"


def openmp_environment() -> dict[str, str]:
    """The OMP_NUM_THREADS an actor starts with: the caller's, or where it has none, what OpenMP would take in
    the caller (its core count; on another node of a cluster that is only a default). Why: Ray sets it to an actor's CPUs (1), and Whisper's int8 kernels (CTranslate2) do not
    compute the same with it: on an AVX2 EPYC the test memo became "buy bread, and mapels" with 1 and
    "Bye Bred, and Bapples" with 2 or none (the caller and local workers alike). The actor's thread share
    is SENSORIUM_THREADS's job (`start_worker`), as in a local worker."""
    return {OPENMP_THREADS: os.environ.get(OPENMP_THREADS) or str(os.cpu_count() or 1)}


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return ray


class _Embedder:
    """The actor's body (made a Ray actor class in `RayPool`)."""

    def __init__(self, config_json: str, threads: int):
        start_worker(config_json, threads)

    def embed(self, entries: list[tuple[str, str]]) -> list:
        return embed_in_worker(entries)

    def pid(self) -> int:
        return os.getpid()


class RayPool:
    """`workers` Ray actors (default: one per CPU Ray reports), each using `threads` threads.

    `address` None starts a local Ray for this pool (stopped again by `close`); "auto" or
    "ray://host:10001" or "host:6379" joins a running cluster. A Ray already initialised in this
    process is used as it is."""

    def __init__(self, address: str | None = None, workers: int | None = None, config: ExpertConfig | None = None,
                 threads: int = 1):
        ray = import_ray()
        from ray.exceptions import RayActorError, WorkerCrashedError

        self.died = (RayActorError, WorkerCrashedError)
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            # quiet: Ray's own start-up notices are not ours to print on the user's terminal
            options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
            if address is None:
                options["num_cpus"] = os.cpu_count() or 1
            try:
                ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"--ray {address or '(local)'}: cannot start or reach Ray ({exc})") from exc
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.threads = max(1, threads)
        self.width = workers or max(1, cpus // self.threads)
        self._config_json = (config or ExpertConfig()).to_json()
        self._actor_class = ray.remote(num_cpus=self.threads,
                                       runtime_env={"env_vars": openmp_environment()})(_Embedder)
        self.actors = [self._new_actor() for _ in range(self.width)]
        self._free = list(self.actors)
        self._dead: list = []
        self._running: dict = {}  # future -> the actor running it

    def _new_actor(self):
        return self._actor_class.remote(self._config_json, self.threads)

    def _reclaim(self) -> None:
        """Actors whose task has finished are free again, or dead (done here, in the caller's thread,
        so a task seen finished has always given its actor back before the next submit)."""
        for future, actor in list(self._running.items()):
            if future.done():
                del self._running[future]
                error = future.exception()
                (self._dead if isinstance(error, self.died) else self._free).append(actor)

    def submit(self, entries: list[tuple[str, str]]) -> Future:
        self._reclaim()
        if not self._free:
            raise RuntimeError(f"all {self.width} actors are busy: keep at most `width` tasks in flight")
        actor = self._free.pop()
        future = actor.embed.remote(entries).future()
        self._running[future] = actor
        return future

    def revive(self) -> None:
        """Replace the actors whose process died."""
        self._reclaim()
        while self._dead:
            dead = self._dead.pop()
            try:
                self._ray.kill(dead, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
            fresh = self._new_actor()
            self.actors[self.actors.index(dead)] = fresh
            self._free.append(fresh)

    def close(self) -> None:
        for actor in self.actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self._started:
            self._ray.shutdown()

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
