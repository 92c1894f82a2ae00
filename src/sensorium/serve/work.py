"""Expensive request work (search by example, classify) in a worker thread that stops when its
client leaves, with a bound on the spoken labels one request may voice anew.

Why: a thread cannot be killed, and before, a classify whose client had gone went on synthesising
templates for minutes, slowing every other request. Here the work runs inside
`progress.cancellable`, the request task polls for the client's disconnect every `POLL_SECONDS`, and
once it has gone the work raises `errors.Cancelled` at its next check (per espeak-ng voice, per
Whisper segment, per window of a long recording: well under a second apart).
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextvars import copy_context
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ..errors import Cancelled
from ..experts.spoken_templates import new_words_at_most
from ..progress import cancellable
from .problems import Problem

T = TypeVar("T")
POLL_SECONDS = 0.2
MAX_NEW_SPOKEN_LABELS = 8  # ~3 s of CPU each: a request voices at most ~25 s worth; the CLI has no cap
MAX_WORK_SECONDS = 60.0  # a search or classify still running after this is stopped (503): e.g. 60 long made-up labels


async def until_client_leaves(request: Request, work: Callable[[], T], budget_seconds: float | None = None) -> T:
    """`work()` in the thread pool; cancelled (errors.Cancelled raised from it) once the client
    disconnects, or a 503 problem once it has run `budget_seconds` (default MAX_WORK_SECONDS)."""
    gone = threading.Event()
    deadline_text = f"{MAX_WORK_SECONDS if budget_seconds is None else budget_seconds:g} s"
    deadline = time.monotonic() + (MAX_WORK_SECONDS if budget_seconds is None else budget_seconds)

    def should_stop() -> bool:
        return gone.is_set() or time.monotonic() > deadline

    def bounded() -> T:
        with cancellable(should_stop), new_words_at_most(MAX_NEW_SPOKEN_LABELS):
            try:
                return work()
            except Cancelled:
                if gone.is_set():
                    raise
                raise Problem(503, "Too much work", f"this request needed more than {deadline_text} of "
                              "computing; send fewer labels or a shorter file, or use the command line") from None

    context = copy_context()
    task = asyncio.ensure_future(run_in_threadpool(context.run, bounded))
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
            if not done and await request.is_disconnected():
                gone.set()
                break
        return await task
    finally:
        gone.set()  # whatever happened to this request, its work must not outlive it
