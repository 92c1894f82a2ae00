"""What classifying spoken clips among ten words costs: the first call (templates built) and each clip after.

Each row runs in a fresh process, so "first call" includes what a new `sensorium classify` pays:
- empty: an empty SENSORIUM_HOME cache, so the spoken templates are synthesised and encoded, unless
  the package ships them (the digits and the Speech Commands words, `spoken_templates.SEED_WORDS`);
- warm: the templates of the same words already on disk (from the run before).
Two label sets: the ten digits (shipped) and ten fruit names (not shipped).
The model itself is loaded before the timing in both. `--src` points at another checkout's `src/`
to time an older version the same way (A/B on one machine).

Usage: .venv/bin/python -m benchmarks.speed.spoken_label_cost [--clips 40] [--src PATH]
Data: ../shared/data/fsdd (clips of all four speakers).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "fsdd"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# ten labels outside the package's template seed: what any other label set costs the first time
OTHER = ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "orange", "peach", "plum"]

CHILD = r"""
import json, sys, time
from pathlib import Path
from sensorium.experts.speech import SpeechRecognizer
from sensorium.readers.audio import read_audio
words = json.loads(sys.argv[1]); paths = [Path(p) for p in json.loads(sys.argv[2])]
clips = [read_audio(p) for p in paths]
recognizer = SpeechRecognizer(); recognizer.model
start = time.perf_counter(); recognizer.score_candidates(clips[0], words); first = time.perf_counter() - start
start = time.perf_counter()
for clip in clips[1:]:
    recognizer.score_candidates(clip, words)
each = (time.perf_counter() - start) / max(1, len(clips) - 1)
print(json.dumps({"first": first, "each": each}))
"""


def run_child(src: Path, home: Path, paths: list[Path], words: list[str]) -> dict:
    # `src` comes first on the child's path (PYTHONPATH precedes the installed package), so --src
    # times another checkout the same way
    env = dict(os.environ, SENSORIUM_HOME=str(home),
               PYTHONPATH=os.pathsep.join(filter(None, (str(src), os.environ.get("PYTHONPATH")))))
    # the joined Whisper folder is shared, so a fresh home does not copy 145 MB again
    models = Path(os.environ.get("SENSORIUM_HOME", Path.home() / ".cache" / "sensorium")) / "models"
    (home / "models").mkdir(parents=True, exist_ok=True)
    for entry in models.iterdir():
        target = home / "models" / entry.name
        if not target.exists():
            target.symlink_to(entry)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(words), json.dumps([str(p) for p in paths])],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"FSDD not found at {DATA}")
    speakers = ["george", "jackson", "lucas", "nicolas"]
    paths = [DATA / f"{i % 10}_{speakers[i % 4]}_{i // 10 % 50}.wav" for i in range(args.clips)]
    print(f"source: {args.src}, {len(paths)} clips")
    print("| labels | cache | first call (s) | each later clip (s) |")
    print("|---|---|---|---|")
    for name, words in (("the ten digits", DIGITS), ("ten fruits (not in the seed)", OTHER)):
        with tempfile.TemporaryDirectory() as scratch:
            home = Path(scratch)
            for cache in ("empty", "warm"):
                timing = run_child(args.src, home, paths, words)
                print(f"| {name} | {cache} | {timing['first']:.2f} | {timing['each']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
