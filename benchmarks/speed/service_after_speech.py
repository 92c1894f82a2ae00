"""The service end to end: drawing before any speech, right after a spoken search, and once the speech
model has freed itself.

    .venv/bin/python -m benchmarks.speed.service_after_speech [--repeats 3] [--idle-seconds 30]

One in-process service (`create_app` under FastAPI's test client, an empty collection) answers
`POST /api/v1/imagine` (8 MNIST digits, 20 steps, what the page asks for), best of `--repeats`, in three
states: before any speech; after a spoken search (`POST /api/v1/search` with a recording, which loads
Whisper); after Whisper went `--idle-seconds` unused and freed itself (`serve --speech-idle-seconds`). The
spoken searches are timed too: the first loads Whisper cold, the second finds it loaded, the third reloads
it after the release. The recording is spoken by espeak-ng (`sensorium.experts.tts`).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    from sensorium.experts import SPEECH_IDLE_SECONDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=SPEECH_IDLE_SECONDS)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from sensorium.experts.tts import save_wav, synthesize
    from sensorium.serve.app import LOOPBACK_HOSTS, create_app

    with tempfile.TemporaryDirectory(prefix="sensorium-bench-") as folder:
        folder = Path(folder)
        save_wav(synthesize("a red bicycle by the river"), folder / "query.wav")
        spoken = (folder / "query.wav").read_bytes()
        app = create_app(folder / "collection", [folder], allowed_hosts=LOOPBACK_HOSTS,
                         speech_idle_seconds=args.idle_seconds)
        whisper = app.state.serve.experts.whisper
        with TestClient(app, base_url="http://127.0.0.1:8765") as client:

            def timed(call) -> float:
                start = time.perf_counter()
                reply = call()
                if reply.status_code != 200:
                    raise SystemExit(f"{reply.status_code}: {reply.text[:300]}")
                return time.perf_counter() - start

            def draw() -> float:
                body = {"prompt": "a handwritten seven", "model": "mnist", "n": 8, "steps": 20, "seed": 0}
                return min(timed(lambda: client.post("/api/v1/imagine", json=body)) for _ in range(args.repeats))

            def search() -> float:
                return timed(lambda: client.post("/api/v1/search", files={"file": ("q.wav", spoken, "audio/wav")}))

            draw()  # loads the drawing model and its text encoder
            rows = [("before any speech", draw(), None)]
            cold = search()
            rows.append(("after a spoken search (Whisper loaded)", draw(), cold))
            warm = search()
            rows.append(("after another spoken search", draw(), warm))
            began = time.perf_counter()
            while whisper.loaded:
                time.sleep(0.1)
            waited = time.perf_counter() - began
            rows.append((f"Whisper freed itself ({args.idle_seconds:.0f} s unused; waited {waited:.1f} s)", draw(),
                         None))
            reloaded = search()
            rows.append(("after a spoken search that reloaded Whisper", draw(), reloaded))

    first = rows[0][1]
    print(f"best of {args.repeats} drawings per row\n")
    print("| state | POST /imagine (8 digits, 20 steps) | spoken search before it |")
    print("|---|---|---|")
    for name, drawn, searched in rows:
        print(f"| {name} | {drawn:.3f} s ({drawn / first:.2f}x) | {'' if searched is None else f'{searched:.2f} s'} |")


if __name__ == "__main__":
    main()
