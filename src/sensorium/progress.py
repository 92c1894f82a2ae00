"""Progress of long work deep inside a call, for whoever shows it (the CLI's bars).

A lower layer calls `report(stage, done, total)` as it goes, e.g. the spoken templates that a new
label set needs once (tens of seconds). Nothing happens unless the caller wrapped the work in
`reporting(handler)`; the handler lives in a context variable, so threads and concurrent requests
never see each other's.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

Handler = Callable[[str, int, int], None]  # (stage, done, total)

_HANDLER: ContextVar[Handler | None] = ContextVar("sensorium_progress", default=None)


@contextmanager
def reporting(handler: Handler | None) -> Iterator[None]:
    """Send the `report` calls made inside this block to `handler` (None: to nobody)."""
    token = _HANDLER.set(handler)
    try:
        yield
    finally:
        _HANDLER.reset(token)


def report(stage: str, done: int, total: int) -> None:
    """`done` of `total` steps of `stage` are finished."""
    handler = _HANDLER.get()
    if handler is not None:
        handler(stage, done, total)
