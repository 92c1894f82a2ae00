"""What runs inside a worker process (local or a Ray actor): load the experts once, then read and
embed the files it is handed."""
from __future__ import annotations

import os
import threading
import time

_EMBEDDER = None
PARENT_CHECK_SECONDS = 1.0


def _exit_with_parent() -> None:
    """A worker whose parent was killed (`kill -9` of `sensorium index`) must not live on, embedding
    files nobody will store: it checks once a second that its parent is still the one it had."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="sensorium-parent-watch", daemon=True).start()


def start_worker(config_json: str, threads: int) -> None:
    """Set this process's thread share, then build its embedder (the experts load on first use)."""
    global _EMBEDDER
    from ..cpu import limit_threads
    from ..experts import ExpertConfig, Experts
    from ..space.embed import Embedder

    _exit_with_parent()
    limit_threads(threads)
    _EMBEDDER = Embedder(Experts(ExpertConfig.from_json(config_json)))


def embed_in_worker(entries: list[tuple[str, str]]) -> list:
    """One `FileWork` per (path, modality) entry, in order."""
    from ..indexing import embed_entries

    if _EMBEDDER is None:
        raise RuntimeError("embed_in_worker called in a process that start_worker did not set up")
    return embed_entries(_EMBEDDER, entries)
