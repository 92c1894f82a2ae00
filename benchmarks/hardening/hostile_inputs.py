"""Replay every hostile request of the hardening report against a live `sensorium serve`, and print
status, peak server RSS and time for each, plus the tracebacks the server logged.

    .venv/bin/python -m benchmarks.hardening.hostile_inputs [--quick]

The server runs as users run it (`sensorium serve`, a separate process, loopback) on a small
collection (a note and a spoken memo). Peak RSS is sampled from /proc every 20 ms while a case runs.
"Work stopped" is how long the server kept a core busy after a client hung up mid-request (CPU time
from /proc, until it used < 10% of a core over 0.25 s). Targets: RSS <= 1.5 GB for every case,
0 responses 500, 0 tracebacks, work stopped within 2 s.
`--quick` sends 1,000 instead of 10,000 made-up methods.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

from benchmarks.common.hostile import wav

from sensorium.serve.process import start_server, stop_server
from sensorium.serve.security import TOKEN_FILE

LABELS_60 = ", ".join(f"zq{chr(97 + i % 26)}{chr(97 + i // 26)}blor" for i in range(60))
NEW_LABELS_6 = "vexillum, quoddity, brindlewort, sarcenet, glaucous, pelerine"


class Server:
    def __init__(self, process, port: int, log: Path):
        self.process, self.port, self.log = process, port, log

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 600) -> tuple[int, bytes, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            connection.close()


def multipart(fields: dict[str, str], file_bytes: bytes, filename: str) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + file_bytes + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def measured(server: Server, action) -> dict:
    """Run `action()` (-> (status text, note)) while sampling the server's RSS."""
    peak = [server.rss_mb()]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], server.rss_mb())
            except OSError:
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    before = server.tracebacks()
    sampler.start()
    began = time.perf_counter()
    status, note = action()
    seconds = time.perf_counter() - began
    stop.set()
    sampler.join()
    return {"status": status, "note": note, "peak": peak[0], "seconds": seconds,
            "tracebacks": server.tracebacks() - before}


def hang_up_after(server: Server, path: str, body: bytes, headers: dict, seconds: float) -> tuple[str, str]:
    """Send a request, wait, close the socket; then time how long the server keeps a core busy."""
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        raw.sendall(head.encode() + body)
        time.sleep(seconds)
    left = time.perf_counter()
    busy_until = left
    last_cpu, last_t = server.cpu_seconds(), time.perf_counter()
    while time.perf_counter() - left < 300:
        time.sleep(0.25)
        cpu, t = server.cpu_seconds(), time.perf_counter()
        if (cpu - last_cpu) / (t - last_t) >= 0.10:
            busy_until = t
        elif t - busy_until > 1.0:
            break
        last_cpu, last_t = cpu, t
    return "hung up", f"work stopped {busy_until - left:.1f} s after the client left"


def cases(server: Server, token: str, quick: bool) -> list[tuple[str, object]]:
    one_hertz = wav(1, 1, 8, os.urandom(10_000))
    one_hertz_25mb = wav(1, 1, 8, os.urandom(25 * 1024 * 1024 - 200))
    import numpy as np

    noise = np.random.default_rng(0).integers(96, 160, 8000 * 54 * 60, dtype=np.uint8).tobytes()
    long_wav = wav(8000, 1, 8, noise)

    def post(path, fields, data, name, extra=None):
        body, headers = multipart(fields, data, name)
        status, payload, _ = server.request("POST", path, body, {**headers, **(extra or {})})
        return str(status), _detail(payload)

    def get(path, method="GET", extra=None):
        status, payload, _ = server.request(method, path, headers=extra)
        return str(status), _detail(payload)

    def methods():
        count = 1_000 if quick else 10_000
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        statuses = set()
        for index in range(count):
            connection.request(f"ZZ{index:04d}", "/api/v1/health")
            response = connection.getresponse()
            response.read()
            statuses.add(response.status)
            if response.getheader("connection", "").lower() == "close":
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.close()
        began = time.perf_counter()
        status, payload, _ = server.request("GET", "/metrics")
        return (f"{sorted(statuses)} then {status}",
                f"{count:,} methods: /metrics {len(payload) / 1024:.0f} KB, rendered in {time.perf_counter() - began:.2f} s")

    def chunked_over_cap():
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        boundary = uuid.uuid4().hex
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode()

        def chunks():
            yield head
            for _ in range(30):
                yield b"\0" * (1024 * 1024)
            yield f"\r\n--{boundary}--\r\n".encode()

        connection.request("POST", "/api/v1/search", body=chunks(), encode_chunked=True,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                    "Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        return str(response.status), _detail(response.read())

    classify_body, classify_headers = multipart({"labels": NEW_LABELS_6}, _spoken_word(), "word.wav")
    return [
        ("1 Hz WAV, 10 kB, search", lambda: post("/api/v1/search", {}, one_hertz, "a.wav")),
        ("1 Hz WAV, 25 MB, search", lambda: post("/api/v1/search", {}, one_hertz_25mb, "a.wav")),
        ("8 kHz 8-bit WAV, 54 min (26 MB), search", lambda: post("/api/v1/search", {}, long_wav, "a.wav")),
        ("item id 2^63", lambda: get("/api/v1/items/9223372036854775808")),
        ("item id -2^63-1, media", lambda: get("/api/v1/items/-9223372036854775809/media")),
        ("item id 2^64, thumbnail", lambda: get("/api/v1/items/18446744073709551616/thumbnail")),
        ("made-up HTTP methods", methods),
        ("classify, 60 made-up labels", lambda: post("/api/v1/classify", {"labels": LABELS_60}, _spoken_word(), "w.wav")),
        ("classify, 6 new labels, client leaves after 1 s",
         lambda: hang_up_after(server, "/api/v1/classify", classify_body, classify_headers, 1.0)),
        ("cross-site POST (Origin: evil.example)",
         lambda: post("/api/v1/search", {"q": "cat"}, one_hertz, "a.wav", {"Origin": "https://evil.example"})),
        ("cross-site GET search (Sec-Fetch-Site)",
         lambda: get("/api/v1/search?q=fern", extra={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})),
        ("chunked upload of 30 MB", chunked_over_cap),
        ("Range: bytes=999999999-", lambda: get("/api/v1/items/1/media", extra={"Range": "bytes=999999999-"})),
        ("Range: bytes=zz", lambda: get("/api/v1/items/1/media", extra={"Range": "bytes=zz"})),
        ("HEAD media", lambda: get("/api/v1/items/1/media", method="HEAD")),
        ("index an absolute folder outside the roots", lambda: (lambda r: (str(r[0]), _detail(r[1])))(server.request(
            "POST", "/api/v1/jobs/index", json.dumps({"folder": "/etc"}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}))),
    ]


def _detail(payload: bytes) -> str:
    try:
        data = json.loads(payload)
    except ValueError:
        return f"(not JSON: {payload[:60]!r})" if payload else ""
    return str(data.get("detail", data.get("title", "")))[:90] if isinstance(data, dict) else ""


def _spoken_word() -> bytes:
    import io

    import soundfile as sf

    from sensorium.experts.tts import synthesize

    buffer = io.BytesIO()
    sf.write(buffer, synthesize("marble").samples, 16000, format="WAV")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from sensorium.collection import Collection
    from sensorium.experts.tts import save_wav, synthesize

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        media = tmp / "media"
        media.mkdir()
        (media / "ferns.txt").write_text("Water the ferns on Sunday and repot the basil.\n")
        save_wav(synthesize("Remember to buy bread and apples at the market."), media / "memo.wav")
        os.environ["SENSORIUM_HOME"] = str(tmp / "home")  # the template cache starts empty, as on a new machine
        with Collection(tmp / "collection") as collection:
            collection.index(media)
        log = tmp / "server.log"
        process, port = start_server(tmp / "collection", [media], log, timeout=120)
        server = Server(process, port, log)
        token = (tmp / "collection" / TOKEN_FILE).read_text().strip()
        try:
            idle = server.rss_mb()
            print(f"server idle: {idle:.0f} MB RSS")
            print("| case | status | peak RSS | time | tracebacks | detail |")
            print("|---|---|---|---|---|---|")
            for name, action in cases(server, token, args.quick):
                if server.process.poll() is not None:
                    print(f"| {name} | server dead (exit {server.process.returncode}) | | | | |")
                    break
                result = measured(server, action)
                print(f"| {name} | {result['status']} | {result['peak']:.0f} MB | {result['seconds']:.2f} s | "
                      f"{result['tracebacks']} | {result['note']} |", flush=True)
            print(f"tracebacks in the whole log: {server.tracebacks()}; 500 responses: "
                  f"{log.read_text(errors='replace').count(' 500 ')}")
        finally:
            stop_server(process)


if __name__ == "__main__":
    main()
