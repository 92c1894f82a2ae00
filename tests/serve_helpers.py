"""Helpers for the `sensorium serve` tests: a real server process and a tiny stdlib HTTP client."""
from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from sensorium.serve.process import start_server as start_server_process
from sensorium.serve.process import stop_server  # noqa: F401 (the tests import it from here)

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def start_server(collection: Path, roots: list[Path], log: Path) -> tuple[subprocess.Popen, str]:
    """`sensorium serve` in a subprocess on a free loopback port, and its base URL."""
    process, port = start_server_process(collection, roots, log)
    return process, f"http://127.0.0.1:{port}"


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
            json_body=None, timeout: float = 120) -> Reply:
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, dict]:
    """(body, headers) of a multipart/form-data request."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def read_events(url: str, timeout: float = 180) -> list[tuple[str, dict]]:
    """Every server-sent event of a stream, until the server closes it."""
    events, name, data = [], None, []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                events.append((name or "message", json.loads("\n".join(data))))
                name, data = None, []
    return events
