"""One writer per collection, enforced by the kernel.

An exclusive, non-blocking `flock` on `folder/writer.lock`. The kernel drops it when the holder
exits for any reason (even SIGKILL), so a crashed writer never leaves the collection locked and no
stale-lock cleanup exists. The file also records who holds it, only to write a useful message.
"""
from __future__ import annotations

import fcntl
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from sensorium.errors import CollectionLockedError

LOCK_NAME = "writer.lock"


class WriterLock:
    """`with WriterLock(folder):` ... only one process (and one holder within it) at a time."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> WriterLock:
        if self._fd is not None:
            raise CollectionLockedError(f"collection {self.folder} writer lock is already held by this object")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise CollectionLockedError(
                f"collection {self.folder} is being written by {holder}; wait for it or stop it") from None
        except BaseException:
            os.close(fd)
            raise
        started = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()} since={started}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # nobody holds it now: leave no misleading holder behind
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """'pid 1234 on host since 2026-...' from the lock file, or a vaguer phrase if it is empty."""
    try:
        fields = dict(part.split("=", 1) for part in os.pread(fd, 512, 0).decode().split() if "=" in part)
    except (OSError, UnicodeDecodeError, ValueError):
        fields = {}
    if "pid" not in fields:
        return "another process"
    text = f"pid {fields['pid']}"
    if fields.get("host") and fields["host"] != socket.gethostname():
        text += f" on {fields['host']}"
    if fields.get("since"):
        text += f" since {fields['since']}"
    return text
