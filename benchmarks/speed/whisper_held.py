"""Torch work in a process that holds a Whisper model: before it ran, while held, after release, after idling.

    .venv/bin/python -m benchmarks.speed.whisper_held [--repeats 3]

CTranslate2's OpenMP calls land in torch's OpenMP runtime (libgomp), and its worker threads live as long
as the model; with their teams counted, libgomp has more threads than cores and torch's threads sleep
between parallel regions instead of spinning (docs/experiments/2026-12-07-whisper-threads-slow-torch.md).
Two torch workloads are timed in each state, best of `--repeats`: drawing 8 pictures with the shipped MNIST
text-to-image model (20 steps, what the service's imagine call does), and 50 small convolutions forward and
backward (a training step's size), with the main thread's voluntary context switches over them. The last
row waits for the model to free itself after `SPEECH_IDLE_SECONDS` unused, what a service does on its own.
"""
from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np


def switches() -> int:
    status = Path(f"/proc/self/task/{threading.get_native_id()}/status")
    if not status.is_file():
        return -1  # not Linux
    line = next(line for line in status.read_text().splitlines() if line.startswith("voluntary_ctxt_switches"))
    return int(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from sensorium.experts import SPEECH_IDLE_SECONDS, default_experts, release_default_experts
    from sensorium.generation.imagine import load_imaginer

    imaginer = load_imaginer("mnist")
    conv, images = torch.nn.Conv2d(16, 32, 3, padding=1), torch.randn(64, 16, 16, 16)

    def draw() -> float:
        start = time.perf_counter()
        imaginer.imagine("a handwritten seven", n=8, steps=20, guidance=3.0, seed=0)
        return time.perf_counter() - start

    def steps() -> tuple[float, int]:
        before, start = switches(), time.perf_counter()
        for _ in range(50):
            conv(images).sum().backward()
        return time.perf_counter() - start, switches() - before

    def measure() -> tuple[float, float, int]:
        drawn = min(draw() for _ in range(args.repeats))
        stepped = min((steps() for _ in range(args.repeats)), key=lambda result: result[0])
        return drawn, *stepped

    draw(), steps()  # warm up
    rows = [("before Whisper ran", measure())]
    default_experts().whisper.encode([np.zeros(16000, np.float32)], window_seconds=30)
    rows.append(("Whisper held", measure()))
    release_default_experts()
    rows.append(("after release_default_experts()", measure()))
    whisper = default_experts().whisper  # used again, then left alone until it frees itself
    whisper.encode([np.zeros(16000, np.float32)], window_seconds=30)
    rows.append(("Whisper held again", measure()))
    waited = time.perf_counter()
    while whisper.loaded:
        time.sleep(0.1)
    waited = time.perf_counter() - waited
    rows.append((f"freed itself ({SPEECH_IDLE_SECONDS:.0f} s unused; waited {waited:.1f} s more)", measure()))

    print(f"torch threads: {torch.get_num_threads()}; best of {args.repeats}\n")
    print("| state | draw 8 pictures (20 steps) | 50 small conv steps | voluntary switches over them |")
    print("|---|---|---|---|")
    first = rows[0][1]
    for name, (drawn, stepped, switched) in rows:
        print(f"| {name} | {drawn:.3f} s ({drawn / first[0]:.2f}x) | {stepped:.3f} s ({stepped / first[1]:.2f}x) "
              f"| {switched} |")


if __name__ == "__main__":
    main()
