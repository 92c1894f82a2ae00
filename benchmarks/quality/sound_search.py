"""Sound-by-example: how well the native audio vectors (Whisper encoder, pooled) find recordings
that sound alike, and what they cost at indexing time.

    .venv/bin/python -m benchmarks.quality.sound_search [--quick]

Data: FSDD (../shared/data/fsdd, 2,000 spoken digits, 4 speakers). Each clip is a query against
every other clip by cosine of the stored (L2-normalised) vectors; reported: how often the top hit
is the same digit said by ANOTHER speaker (gallery = other speakers only: the words-free question
"which recordings sound like this one"), and the same speaker (gallery = other clips). FSDD is
speech, so this measures acoustic similarity only, not meaning. Cost: seconds of Whisper encoder
per second of audio for the sound vectors, against free transcription of the same clips.
Vectors come from the same cache as benchmarks/quality/emergent_digits.py (computed on first use).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FSDD = ROOT.parent / "shared" / "data" / "fsdd"
CACHE = ROOT / ".benchmarks-cache" / "emergent-features"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="takes 0-9 only (400 clips)")
    args = parser.parse_args()
    if not FSDD.is_dir():
        sys.exit(f"{FSDD}: not found (see ../shared/data/README.md)")
    from sensorium.align.audio_features import audio_features
    from sensorium.align.features import FeatureCache

    paths = sorted(FSDD.rglob("*.wav"))
    if args.quick:
        paths = [p for p in paths if int(p.stem.split("_")[2]) < 10]
    digits = np.array([int(p.stem.split("_")[0]) for p in paths])
    speakers = np.array([p.stem.split("_")[1] for p in paths])
    began = time.perf_counter()
    raw = audio_features(FeatureCache(CACHE), paths)
    vectors = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    print(f"{len(paths)} clips, vectors in {time.perf_counter() - began:.1f} s (cached after the first run)")
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    print("| query speaker | same digit, other speakers, R@1 | same digit, same speaker, R@1 | clips |")
    print("|---|---|---|---|")
    for speaker in sorted(set(speakers)):
        rows = np.where(speakers == speaker)[0]
        other = np.where(speakers[None, :] != speaker, scores[rows], -np.inf)
        same = np.where(speakers[None, :] == speaker, scores[rows], -np.inf)
        cross = np.mean(digits[other.argmax(1)] == digits[rows])
        within = np.mean(digits[same.argmax(1)] == digits[rows])
        print(f"| {speaker} | {cross:.3f} | {within:.3f} | {len(rows)} |")
    print("chance: 0.100")

    from sensorium.experts import Experts
    from sensorium.readers import read

    experts = Experts()
    sample = [read(p) for p in paths[:: max(1, len(paths) // 40)][:40]]
    seconds = sum(p.duration for p in sample)
    experts.sound.embed([sample[0].samples])
    experts.speech.transcribe(sample[0])
    t0 = time.perf_counter()
    for payload in sample:
        experts.sound.embed([payload.samples])
    sound_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for payload in sample:
        experts.speech.transcribe(payload)
    speech_s = time.perf_counter() - t0
    print(f"\ncost on {len(sample)} clips ({seconds:.1f} s of audio), one clip at a time:")
    print("| step | seconds | ms per clip |")
    print("|---|---|---|")
    print(f"| sound vectors (Whisper encoder, pooled) | {sound_s:.1f} | {1000 * sound_s / len(sample):.0f} |")
    print(f"| free transcription (encoder + decoder) | {speech_s:.1f} | {1000 * speech_s / len(sample):.0f} |")


if __name__ == "__main__":
    main()
