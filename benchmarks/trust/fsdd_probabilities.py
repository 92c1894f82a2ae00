"""Per-clip probabilities of `sensorium classify` on FSDD spoken digits, cached for the trust benchmarks.

    .venv/bin/python -m benchmarks.trust.fsdd_probabilities [--takes 50]

Each clip of ../shared/data/fsdd is classified over the ten digit words with the library's
`classify` (what `sensorium classify clip.wav --labels zero,...,nine` prints), one clip at a time.
The result, (probabilities, truth, speaker) per clip, is written to
.benchmarks-cache/fsdd-probabilities-{takes}.npz and resumed from it when interrupted, so the
calibration and fairness benchmarks never pay the ~20 minutes twice.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "fsdd"
CACHE = ROOT / ".benchmarks-cache"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPEAKERS = ["george", "jackson", "lucas", "nicolas"]


def cache_path(takes: int) -> Path:
    return CACHE / f"fsdd-probabilities-{takes}.npz"


def load(takes: int = 50) -> dict[str, np.ndarray]:
    """probs (n, 10), truth (n,), speaker (n,) of str; raises when the cache is missing or partial."""
    path = cache_path(takes)
    if not path.exists():
        raise SystemExit(f"{path}: missing; run `python -m benchmarks.trust.fsdd_probabilities --takes {takes}`")
    data = dict(np.load(path))
    if len(data["truth"]) < 10 * takes * len(SPEAKERS):
        raise SystemExit(f"{path}: only {len(data['truth'])} clips; run the script again to finish it")
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--takes", type=int, default=50)
    args = parser.parse_args()
    from rich.progress import Progress

    from sensorium.classification import classify

    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: FSDD is not here")
    clips = [(DATA / f"{digit}_{speaker}_{take}.wav", digit, speaker)
             for speaker in SPEAKERS for digit in range(10) for take in range(args.takes)]
    path = cache_path(args.takes)
    done = dict(np.load(path)) if path.exists() else {"probs": np.empty((0, 10)), "truth": np.empty(0, int),
                                                      "speaker": np.empty(0, "<U16")}
    probs, truth, speaker = list(done["probs"]), list(done["truth"]), list(done["speaker"])
    CACHE.mkdir(exist_ok=True)
    with Progress() as bar:
        task = bar.add_task("classifying", total=len(clips), completed=len(truth))
        for number, (clip, digit, who) in enumerate(clips[len(truth):], start=len(truth)):
            result = classify(clip, WORDS)  # the experts load once and stay
            scores = {s.label: s.score for s in result.labels}
            probs.append([scores[w] for w in WORDS])
            truth.append(digit)
            speaker.append(who)
            bar.advance(task)
            if number % 50 == 49 or number == len(clips) - 1:
                np.savez(path, probs=np.asarray(probs), truth=np.asarray(truth), speaker=np.asarray(speaker))
    accuracy = np.mean(np.argmax(probs, axis=1) == np.asarray(truth))
    print(f"{len(truth)} clips, accuracy {accuracy:.3f}, cached in {path}")


if __name__ == "__main__":
    main()
