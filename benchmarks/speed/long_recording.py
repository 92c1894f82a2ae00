"""Memory and time to index one long recording: does a two-hour podcast fit the memory of five minutes?

    .venv/bin/python -m benchmarks.speed.long_recording [--minutes 20 120] [--rate 8000]

For each length, a child process builds a collection, indexes a 10 s warm-up recording (so the
models are loaded), then indexes one recording of that length alone, sampling its resident set
every 0.2 s. Printed: the RSS with the models loaded, the peak while the long file was indexed and
the difference (what the file cost), the time, and how many spoken segments came back.

The recording is speech, not noise: espeak-ng sentences (several voices) with pauses and a little
background noise, tiled to the length, written as 16-bit WAV at `--rate` (8 kHz: a phone call or an
old lecture tape). Run it against another checkout with `--src DIR` (e.g. a `git worktree` of the
commit before a change) to compare.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SENTENCES = [
    "Welcome back to the show, today we talk about gardens in the city.",
    "The first guest grows tomatoes on a balcony six floors up.",
    "She waters them every morning before the sun gets too hot.",
    "Our second story is about a bakery that opens at four in the morning.",
    "The bread is made with flour from a mill down the river.",
    "After the break we answer questions sent in by our listeners.",
    "One listener asks how to keep basil alive through the winter.",
    "Bring it inside, give it light, and do not water it too often.",
]

_CHILD = r"""
import json, sys, threading, time
from pathlib import Path
from sensorium.collection import Collection

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

warm, long, home = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
if len(sys.argv) > 4:
    from sensorium.readers import windows
    windows.WINDOW_SECONDS = float(sys.argv[4])
with Collection(home / "collection") as collection:
    collection.index(warm)
    base = rss_mb()
    peak = [base]
    stop = threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    report = collection.index(long)
    seconds = time.perf_counter() - began
    stop.set(); sampler.join()
    item = collection.catalog.item(str((long / "long.wav").resolve()))
    spoken = sum(1 for row in collection.catalog.item_detail(item.id)[1] if row.source == "speech")
print(json.dumps({"base": base, "peak": peak[0], "seconds": seconds, "failed": report.failed,
                  "duration": item.duration, "spoken": spoken}))
"""


def speech_recording(path: Path, minutes: float, rate: int) -> Path:
    """Tiled espeak-ng sentences with pauses and faint noise, as a 16-bit WAV at `rate`."""
    import numpy as np
    import soundfile as sf
    import soxr

    from sensorium.experts.tts import synthesize

    rng = np.random.default_rng(0)
    voices = ["en-us", "en", "en-us+f3"]
    parts = []
    for index, sentence in enumerate(SENTENCES):
        parts.append(synthesize(sentence, voice=voices[index % len(voices)]).samples)
        parts.append(np.zeros(int(16000 * rng.uniform(0.4, 1.5)), np.float32))
    block = soxr.resample(np.concatenate(parts), 16000, rate).astype(np.float32)
    frames = int(minutes * 60 * rate)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as handle:
        written = 0
        while written < frames:
            piece = block[: frames - written] + rng.normal(0, 0.002, min(len(block), frames - written)).astype(np.float32)
            handle.write(piece)
            written += len(piece)
    return path


def run(minutes: float, rate: int, src: str | None, window: float | None = None) -> dict:
    import numpy as np
    import soundfile as sf

    from sensorium.experts.tts import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "warm").mkdir()
        (tmp / "long").mkdir()
        warm = synthesize("A short warm up clip so that every model is loaded first.").samples
        sf.write(tmp / "warm" / "warm.wav", np.concatenate([warm, np.zeros(16000 * 6, np.float32)]), 16000)
        speech_recording(tmp / "long" / "long.wav", minutes, rate)
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = src
        extra = [] if window is None else [str(window)]
        child = subprocess.run([sys.executable, "-c", _CHILD, str(tmp / "warm"), str(tmp / "long"), str(tmp), *extra],
                               capture_output=True, text=True, env=env)
        if child.returncode != 0:
            return {"error": child.stderr.strip().splitlines()[-1] if child.stderr.strip() else f"exit {child.returncode}"}
        return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[20.0, 120.0])
    parser.add_argument("--rate", type=int, default=8000)
    parser.add_argument("--src", help="a checkout's src/ folder to measure instead of this one")
    parser.add_argument("--window", type=float, help="seconds of sound the experts hear at once (default: the reader's)")
    args = parser.parse_args()
    if args.window:
        print(f"window: {args.window:g} s")
    print("| recording | RSS, models loaded | peak RSS | cost of the file | time | x real time | spoken segments |")
    print("|---|---|---|---|---|---|---|")
    for minutes in args.minutes:
        result = run(minutes, args.rate, args.src, args.window)
        if "error" in result:
            print(f"| {minutes:g} min | failed: {result['error']} | | | | | |", flush=True)
            continue
        cost = result["peak"] - result["base"]
        print(f"| {minutes:g} min at {args.rate // 1000} kHz | {result['base']:.0f} MB | {result['peak']:.0f} MB | "
              f"**{cost:+.0f} MB** | {result['seconds']:.1f} s | {minutes * 60 / result['seconds']:.1f}x | "
              f"{result['spoken']} |", flush=True)


if __name__ == "__main__":
    main()
