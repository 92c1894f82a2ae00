"""What every reader does before and around decoding: check the file exists and is not empty,
and turn any decoder failure into a ReadError, so that one bad file in a batch of thousands is
recorded and skipped instead of crashing the run.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ReadError

_MAX_DETAIL = 160


def check_file(path: str | Path) -> int:
    """The file's size in bytes; ReadError when it is missing, not a regular file, or empty."""
    path = Path(path)
    try:
        if not path.exists():
            raise ReadError(path, "no such file")
        if not path.is_file():
            raise ReadError(path, "not a regular file")
        size = path.stat().st_size
    except OSError as exc:  # permission denied on a parent folder, broken mount, ...
        raise ReadError(path, f"cannot access file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ReadError(path, "zero-byte file")
    return size


def describe(exc: BaseException) -> str:
    """A one-line, length-capped description of a decoder's exception."""
    # FFmpeg and OS errors carry a clean sentence in strerror; str() adds errno and the path.
    strerror = getattr(exc, "strerror", None)
    text = " ".join(str(strerror or exc).split()) or type(exc).__name__
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 3] + "..."
    return text


def reraise_machine(exc: BaseException) -> None:
    """Re-raise `exc` when it is about the machine (out of memory, an interrupt), not the file.

    PyAV raises FFmpeg's ENOMEM as `av.error.MemoryError`, a MemoryError too; FFmpeg returns it for
    malformed files (an atom declaring gigabytes it refuses to allocate), so that one is the file's
    fault and becomes a ReadError like any other decoder error.
    """
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    if isinstance(exc, MemoryError):
        try:
            from av import FFmpegError
        except ImportError:
            raise exc from None
        if not isinstance(exc, FFmpegError):
            raise exc


@contextmanager
def decoding(path: str | Path, what: str) -> Iterator[None]:
    """Re-raise anything a decoder throws as ReadError("<what> failed: <detail>").

    ReadError passes unchanged; KeyboardInterrupt and MemoryError pass too, because they are
    about the machine, not the file.
    """
    try:
        yield
    except ReadError:
        raise
    except Exception as exc:
        reraise_machine(exc)
        raise ReadError(path, f"{what} failed ({describe(exc)})") from exc
