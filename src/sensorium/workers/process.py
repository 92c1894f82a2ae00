"""What runs inside a worker process (local or a Ray actor): load the experts once, then read and
embed the files it is handed."""
from __future__ import annotations

_EMBEDDER = None


def start_worker(config_json: str, threads: int) -> None:
    """Set this process's thread share, then build its embedder (the experts load on first use)."""
    global _EMBEDDER
    from ..cpu import limit_threads
    from ..experts import ExpertConfig, Experts
    from ..space.embed import Embedder

    limit_threads(threads)
    _EMBEDDER = Embedder(Experts(ExpertConfig.from_json(config_json)))


def embed_in_worker(entries: list[tuple[str, str]]) -> list:
    """One `FileWork` per (path, modality) entry, in order."""
    from ..indexing import embed_entries

    if _EMBEDDER is None:
        raise RuntimeError("embed_in_worker called in a process that start_worker did not set up")
    return embed_entries(_EMBEDDER, entries)
