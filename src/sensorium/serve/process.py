"""Start and stop a real `sensorium serve` process on a free loopback port.

Why: the tests and the load benchmark drive the server as a user would — a separate process,
over HTTP — so both need the same start-up (free port, wait for /api/v1/health, fail with the
server's log) and the same clean shutdown. Stdlib only, so it adds no dependencies.
"""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import sensorium

HEALTH_PATH = "/api/v1/health"
LOG_TAIL_CHARS = 2000


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_server(collection: Path, roots: list[Path], log: Path, host: str = "127.0.0.1",
                 timeout: float = 60, options: list[str] | tuple[str, ...] = ()) -> tuple[subprocess.Popen, int]:
    """`sensorium serve` in a subprocess on a free port of `host`; returns once /health answers 200.
    `options`: more command-line options of `serve` (e.g. `--allow-origin URL`).

    The server's stdout and stderr go to `log`; its tail is in the RuntimeError raised when the
    server exits early or does not answer within `timeout` seconds.
    """
    port = free_port(host)
    source = str(Path(sensorium.__file__).resolve().parents[1])  # this very package, installed or not
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])))
    args = [sys.executable, "-c", "from sensorium.cli import main; main()", "serve", "-c", str(collection),
            "--host", host, "--port", str(port)]
    for root in roots:
        args += ["--root", str(root)]
    args += list(options)
    with Path(log).open("wb") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(args, env=env, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {_tail(log)}")
        if _healthy(host, port):
            return process, port
        time.sleep(0.2)
    stop_server(process, timeout=5)
    raise RuntimeError(f"server did not answer {HEALTH_PATH} within {timeout:.0f} s: {_tail(log)}")


def stop_server(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it is still running after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(host: str, port: int) -> bool:
    """Whether the server on this (loopback) address answers its health check with 200."""
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", HEALTH_PATH)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):  # not listening yet, or answering an error
        return False
    finally:
        connection.close()


def _tail(log: Path) -> str:
    return Path(log).read_text(errors="replace")[-LOG_TAIL_CHARS:]
