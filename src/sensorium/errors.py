"""The few exception types Sensorium raises on purpose.

Every error a user can cause names the file or field at fault and the reason, so that a batch can
record it and move on, and the CLI can print one line instead of a traceback.
"""
from __future__ import annotations

from pathlib import Path


class SensoriumError(Exception):
    """Base of every error Sensorium raises deliberately."""


class ReadError(SensoriumError):
    """A file could not be decoded or failed validation.

    `path` is the file, `reason` a short human sentence ("zero-byte file", "truncated JPEG ...").
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsupportedFileError(ReadError):
    """The file's type is not one Sensorium reads (it is skipped, not counted as a failure)."""


class ModelError(SensoriumError):
    """A pretrained expert could not be loaded (missing package, bad local folder, bad checksum)."""


class QueryError(SensoriumError):
    """A search or classify request is malformed (no query, unreadable query file, bad label list)."""


class Cancelled(SensoriumError):
    """The work's caller stopped waiting for it (a client disconnected): raised at the next check
    (`sensorium.progress.check_cancelled`) so the CPU goes back to those still waiting."""


class CollectionLockedError(SensoriumError):
    """Another process holds the collection's writer lock."""


class ConfigError(SensoriumError):
    """A configuration file or field is invalid; the message names the field."""
