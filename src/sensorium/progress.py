"""Progress of long work deep inside a call, for whoever shows it (the CLI's bars), and the way
back: the caller saying it no longer wants the result.

A lower layer calls `report(stage, done, total)` as it goes, e.g. the spoken templates that a new
label set needs once (tens of seconds). Nothing happens unless the caller wrapped the work in
`reporting(handler)`; the handler lives in a context variable, so threads and concurrent requests
never see each other's.

Cancellation rides the same channel: work wrapped in `cancellable(should_stop)` raises
`errors.Cancelled` at its next `report` or `check_cancelled` once `should_stop()` is true (the
service's test: the client disconnected). Long loops check between steps of well under a second.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

Handler = Callable[[str, int, int], None]  # (stage, done, total)

_HANDLER: ContextVar[Handler | None] = ContextVar("sensorium_progress", default=None)
_SHOULD_STOP: ContextVar[Callable[[], bool] | None] = ContextVar("sensorium_should_stop", default=None)


@contextmanager
def reporting(handler: Handler | None) -> Iterator[None]:
    """Send the `report` calls made inside this block to `handler` (None: to nobody)."""
    token = _HANDLER.set(handler)
    try:
        yield
    finally:
        _HANDLER.reset(token)


@contextmanager
def cancellable(should_stop: Callable[[], bool] | None) -> Iterator[None]:
    """Inside this block, `check_cancelled` and `report` raise `Cancelled` once `should_stop()` is true."""
    token = _SHOULD_STOP.set(should_stop)
    try:
        yield
    finally:
        _SHOULD_STOP.reset(token)


def check_cancelled() -> None:
    """Raise `errors.Cancelled` when the caller of this work has said it stopped waiting."""
    should_stop = _SHOULD_STOP.get()
    if should_stop is not None and should_stop():
        from .errors import Cancelled

        raise Cancelled("the caller stopped waiting for this work")


def report(stage: str, done: int, total: int) -> None:
    """`done` of `total` steps of `stage` are finished (and a chance to stop: see `cancellable`)."""
    check_cancelled()
    handler = _HANDLER.get()
    if handler is not None:
        handler(stage, done, total)
