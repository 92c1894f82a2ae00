"""`sensorium serve`: an HTTP API and a web page over one collection (loopback-only by default)."""
from __future__ import annotations

from .app import create_app, run_server

__all__ = ["create_app", "run_server"]
