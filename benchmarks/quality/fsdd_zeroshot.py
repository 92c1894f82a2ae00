"""Zero-shot spoken digits (FSDD): which of "zero".."nine" does each clip say?

Two methods with the same Whisper base expert, no training:
  transcribe  free transcription, then the first digit word (or numeral) found in the text;
  score       SpeechRecognizer.score_candidates over the ten words (Whisper's probability of each
              word as the first token, averaged over 3 speeds, calibrated on silence), plus the
              spoken templates' opinion (sensorium.experts.spoken_templates: the clip's Whisper
              encoder vectors and keyword embeddings next to each word spoken by espeak-ng in
              English and accented voices).

Protocol: every method choice and constant of `score` (4 s encoder window, speeds x0.9/x1/x1.1,
clips under 0.5 s also said three times, calibration on silence, first-token scoring with the
candidate-list prompt, the templates' voices and weights) was chosen on speakers george, jackson
and lucas only (dev); nicolas is held out and only reported.

`--together` adds `sensorium.space.agreement.agree` (what `classify_many(..., together=True)` and
`sensorium classify A B C --together` do): the `score` results are re-scored in random batches of
mixed speakers of several sizes, each clip hearing from the clips that sound like it. Its constants
were chosen on the dev speakers by log-loss averaged over those batch sizes; nicolas held out.

Usage: .venv/bin/python -m benchmarks.quality.fsdd_zeroshot [--quick] [--methods score,transcribe] [--together]
Data: ../shared/data/fsdd/{digit}_{speaker}_{take}.wav (8 kHz; read_audio resamples to 16 kHz).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

from sensorium.experts.speech import SpeechRecognizer
from sensorium.readers.audio import read_audio

ROOT = Path(__file__).resolve().parents[2]

DATA = ROOT.parent / "shared" / "data" / "fsdd"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPEAKERS = ["george", "jackson", "lucas", "nicolas"]


def word_in_transcript(text: str) -> int | None:
    """Index of the first digit word or numeral in a free transcript, None when there is none."""
    for token in re.findall(r"[a-z]+|\d", text.lower()):
        if token.isdigit():
            return int(token)
        if token in WORDS:
            return WORDS.index(token)
    return None


def clip_paths(takes: int, speakers: list[str]) -> list[Path]:
    return [DATA / f"{d}_{s}_{k}.wav" for s in speakers for d in range(10) for k in range(takes)]


def run(paths: list[Path], method: str, recognizer: SpeechRecognizer, context: bool,
        keep: dict | None = None) -> tuple[np.ndarray, float]:
    """Predicted word index per clip (-1 = none) and the seconds it took; `keep` collects
    score's log-probabilities and the clips' native vectors (for --together), outside the timing."""
    predictions = np.full(len(paths), -1)
    started = time.perf_counter()
    outside = 0.0
    for i, path in enumerate(paths):
        if i and i % 100 == 0:
            print(f"  {method}: {i}/{len(paths)} clips, {i / (time.perf_counter() - started):.2f} clips/s", flush=True)
        audio = read_audio(path)
        if method == "score":
            scores = recognizer.score_candidates(audio, WORDS, context=context)
            predictions[i] = int(np.argmax(scores))
            if keep is not None:
                aside = time.perf_counter()
                keep.setdefault("scores", []).append(scores)
                keep.setdefault("vectors", []).append(keep["pooler"].embed([audio.samples])[0])
                outside += time.perf_counter() - aside
        else:
            text = " ".join(s.text for s in recognizer.transcribe(audio, beam_size=1, fallback=False))
            found = word_in_transcript(text)
            predictions[i] = -1 if found is None else found
    return predictions, time.perf_counter() - started - outside


BATCH_SIZES = (2, 5, 10, 20, 50, 100, 500)


def together_rows(kept: dict, truth: np.ndarray, who: np.ndarray, speakers: list[str]) -> list[tuple]:
    """Accuracy per speaker after `agree`, in random mixed-speaker batches of each size (and all clips at once)."""
    from sensorium.space.agreement import agree

    scores, vectors = np.stack(kept["scores"]), np.stack(kept["vectors"])
    rows = []
    for size in [b for b in BATCH_SIZES if b < len(truth)] + [len(truth)]:
        order = np.random.default_rng(1).permutation(len(truth))
        agreed = np.array(scores, dtype=np.float64)
        for start in range(0, len(truth), size):
            batch = order[start:start + size]
            agreed[batch] = agree(scores[batch], vectors[batch])
        correct = agreed.argmax(axis=1) == truth
        rows.append((f"score + agree, batches of {size}", {s: float(correct[who == s].mean()) for s in speakers},
                     float(correct.mean()), float("nan")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 takes per digit per speaker (400 clips)")
    parser.add_argument("--takes", type=int, default=None, help="takes per digit per speaker (default 50)")
    parser.add_argument("--methods", default="score,transcribe")
    parser.add_argument("--speakers", default=",".join(SPEAKERS))
    parser.add_argument("--no-context", action="store_true", help="score without the candidate-list prompt")
    parser.add_argument("--together", action="store_true",
                        help="also re-score score's results in mixed batches with sensorium.space.agreement.agree")
    args = parser.parse_args()

    if not DATA.is_dir():
        sys.exit(f"FSDD not found at {DATA}")
    takes = args.takes or (10 if args.quick else 50)
    speakers = args.speakers.split(",")
    paths = clip_paths(takes, speakers)
    truth = np.array([int(p.name.split("_")[0]) for p in paths])
    who = np.array([p.name.split("_")[1] for p in paths])

    recognizer = SpeechRecognizer()
    recognizer.model  # load once, outside the timings
    rows = []
    kept = None
    if args.together:
        from sensorium.experts.sound import WhisperPooler

        kept = {"pooler": WhisperPooler(recognizer)}
    for method in args.methods.split(","):
        predictions, seconds = run(paths, method, recognizer, context=not args.no_context, keep=kept)
        correct = predictions == truth
        per_speaker = {s: float(correct[who == s].mean()) for s in speakers}
        rows.append((method, per_speaker, float(correct.mean()), len(paths) / seconds))
        wrong = [(p.name, WORDS[q] if q >= 0 else "-") for p, q, ok in zip(paths, predictions, correct) if not ok]
        print(f"{method}: {len(wrong)} wrong, e.g. {wrong[:8]}", flush=True)

    if kept and kept.get("scores"):
        rows += together_rows(kept, truth, who, speakers)
    header = ["method", *speakers, "overall", "clips/s"]
    print(f"\nFSDD zero-shot, {takes} takes x 10 digits x {len(speakers)} speakers = {len(paths)} clips")
    print("protocol: score's method chosen on george, jackson, lucas (dev); nicolas held out")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for method, per_speaker, overall, rate in rows:
        cells = [method, *(f"{per_speaker[s]:.3f}" for s in speakers), f"{overall:.3f}", "-" if rate != rate else f"{rate:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
