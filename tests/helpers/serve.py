"""Helpers for the `sensorium serve` tests: a real server process, a tiny stdlib HTTP client, a read
gate that holds an indexing job at a chosen file, a video muxer and a CLI runner."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import sensorium
from sensorium.serve.process import free_port  # noqa: F401 (the tests import it from here)
from sensorium.serve.process import start_server as start_server_process
from sensorium.serve.process import stop_server  # noqa: F401 (the tests import it from here)

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def start_server(collection: Path, roots: list[Path], log: Path,
                 gate: "ReadGate | None" = None) -> tuple[subprocess.Popen, str]:
    """`sensorium serve` in a subprocess on a free loopback port, and its base URL; with `gate`,
    the server's reader can be held at a chosen file (see `ReadGate`)."""
    with gate.installed() if gate is not None else contextlib.nullcontext():
        process, port = start_server_process(collection, roots, log)
    return process, f"http://127.0.0.1:{port}"


# A `sitecustomize` module for the server process only (the test suite's own code, never shipped):
# Python imports it at start-up from PYTHONPATH. It wraps `sensorium.readers.read` (which the
# indexing pipeline looks up on every run), so that while the gate folder holds a file `hold`,
# reading a file whose name matches the pattern written in `hold` first writes `entered` and then
# waits until `hold` is deleted. No gate, no `hold`: the reader is the one the product ships.
GATE_HOOK = '''
import os

_gate = os.environ.get("SENSORIUM_TEST_READ_GATE")
if _gate:
    import fnmatch
    import time
    from pathlib import Path

    import sensorium.readers as _readers

    def gated(reader):
        def wrapper(path, *args, **kwargs):
            hold = Path(_gate) / "hold"
            try:
                pattern = hold.read_text().strip()
            except FileNotFoundError:
                pattern = None
            if pattern and fnmatch.fnmatch(Path(path).name, pattern):
                # written whole, then renamed: the test polls for `entered` and must never read it half-written
                staged = Path(_gate) / "entered.partial"
                staged.write_text(str(path))
                os.replace(staged, Path(_gate) / "entered")
                deadline = time.monotonic() + 300  # a test that forgets to release never hangs the server
                while hold.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            return reader(path, *args, **kwargs)
        return wrapper

    # indexing reads through read_for_index (recordings in windows), everything else through read
    _readers.read = gated(_readers.read)
    _readers.read_for_index = gated(_readers.read_for_index)
'''


class ReadGate:
    """Holds the server's indexing job while it reads a chosen file, so a test acts mid-job by
    construction: `hold(pattern)`, start the job, `wait_entered()`, act (cancel, SIGTERM), `release()`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        (self.folder / "hook").mkdir(parents=True, exist_ok=True)
        (self.folder / "hook" / "sitecustomize.py").write_text(GATE_HOOK)

    @contextlib.contextmanager
    def installed(self):
        """The environment a server started inside this block inherits (the gate's hook on its path)."""
        saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "SENSORIUM_TEST_READ_GATE")}
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.folder / "hook"), saved["PYTHONPATH"]]))
        os.environ["SENSORIUM_TEST_READ_GATE"] = str(self.folder)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def hold(self, pattern: str) -> None:
        (self.folder / "entered").unlink(missing_ok=True)
        (self.folder / "hold").write_text(pattern)

    def wait_entered(self, timeout: float = 120) -> Path:
        """The file the job is held at, once it gets there (the timeout only bounds a failing test)."""
        entered = self.folder / "entered"
        deadline = time.monotonic() + timeout
        while not (entered.exists() and entered.read_text()):  # the hook renames it into place whole
            assert time.monotonic() < deadline, "the job never reached the held file"
            time.sleep(0.05)
        return Path(entered.read_text())

    def release(self) -> None:
        (self.folder / "hold").unlink(missing_ok=True)


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


def wait_for_text(path: Path, text: str, timeout: float = 120) -> None:
    """Until `text` appears in the file at `path` (a server log); the timeout only bounds a failure."""
    deadline = time.monotonic() + timeout
    while text not in Path(path).read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def mux_video(picture: Path, sound: Path, out: Path, fps: int = 5) -> Path:
    """An MP4 showing `picture` for as long as `sound` (any audio file) plays, as its sound track."""
    import av
    import numpy as np
    from PIL import Image

    from sensorium.readers import read

    pixels = np.asarray(Image.open(picture).convert("RGB").resize((320, 240)))
    audio = read(Path(sound))
    samples = np.ascontiguousarray(audio.samples, dtype=np.float32)
    codec = next(name for name in ("libx264", "mpeg4") if _can_encode(name))
    with av.open(str(out), mode="w", format="mp4") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height = 320, 240
        video.pix_fmt = "yuv420p"
        track = container.add_stream("aac", rate=audio.sample_rate, layout="mono")
        for index in range(int(len(samples) / audio.sample_rate * fps) + 1):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for offset in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[np.newaxis, offset:offset + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = audio.sample_rate, offset
            container.mux(track.encode(frame))
        container.mux(track.encode(None))
    return out


def _can_encode(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "w")
        return True
    except Exception:  # noqa: BLE001 - PyAV raises several types for a missing encoder
        return False


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`sensorium ARGS...` as a user runs it: a separate process, this very package, output captured."""
    source = str(Path(sensorium.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-c", "from sensorium.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
