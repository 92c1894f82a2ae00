"""Write examples/speech_pairs.csv (clip, words, digit) from ../shared/data/fsdd for align_speech.toml.

FSDD file names are DIGIT_SPEAKER_TAKE.wav; each clip is paired with its digit spoken as a word.

    .venv/bin/python examples/speech_manifest.py [--data ../shared/data/fsdd] [--per-digit 40]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[1] / "shared" / "data" / "fsdd"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--out", type=Path, default=HERE / "speech_pairs.csv")
    parser.add_argument("--per-digit", type=int, default=40, help="clips per digit (Whisper features cost time)")
    args = parser.parse_args()
    clips = sorted(args.data.glob("*.wav"))
    if not clips:
        raise SystemExit(f"no .wav clips under {args.data}")
    taken: dict[str, int] = {}
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip", "words", "digit"])
        for clip in clips:
            digit = clip.name.split("_", 1)[0]
            if not digit.isdigit() or taken.get(digit, 0) >= args.per_digit:
                continue
            taken[digit] = taken.get(digit, 0) + 1
            writer.writerow([str(clip.resolve()), WORDS[int(digit)], digit])
    print(f"wrote {args.out} ({sum(taken.values())} clips)")


if __name__ == "__main__":
    main()
