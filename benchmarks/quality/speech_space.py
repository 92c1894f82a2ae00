"""Text -> recording retrieval with an attached audio-text space, on FSDD spoken digits.

    .venv/bin/python -m benchmarks.quality.speech_space [--quick] [--data DIR] [--out FILE]

1. `sensorium align` (library job API, the same path as the CLI) trains an audio+text space on the
   clips of george, jackson and lucas (1,500), each paired with its digit word ("seven"), clips of
   one digit never each other's negatives; w = the audio-text default (1).
2. nicolas's 500 clips (--quick: the first 10 takes of each digit, 100) are indexed into a collection
   (Whisper free transcription -> shared space, plus native audio vectors per sound window).
3. For the ten queries "zero".."nine", ranked recordings are scored against nicolas's clips of that
   digit: precision@10, R-precision and average precision (a clip missing from the ranking counts as
   never found), for (a) the collection without the space (transcripts), (b) with the space
   attached (transcript + w * learned cosine, search.py's sound rule), (c) the learned cosine alone.
Frozen audio/text features are cached (shared with emergent_digits.py: the same extractors), the
collection under .benchmarks-cache/speech-space-collection-N (indexing is the slow part; rerunning
reuses it). The space is retrained and attached afresh every run (attach time is reported).
"""
from __future__ import annotations

import argparse
import csv
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sensorium import Collection
from sensorium.align.job import run_align
from sensorium.experts import ExpertConfig

ROOT = Path(__file__).resolve().parents[2]

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fsdd"
CACHE = ROOT / ".benchmarks-cache"
FEATURES = CACHE / "emergent-features"  # raw pooled Whisper features keyed by file hash: the same extractor
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TRAIN_SPEAKERS, TEST_SPEAKER = ("george", "jackson", "lucas"), "nicolas"
TOML = """
[pairs]
manifest = "pairs.csv"
audio = "clip"
text = "words"
group = "digit"
[train]
loss = "infonce"
dim = 128
head = "linear"
epochs = 30
batch_size = 10
lr = 0.003
seed = 0
[features]
cache = "{cache}"
"""


def clips(folder: Path, speakers, takes: int | None = None) -> list[Path]:
    out = []
    for path in sorted(folder.glob("*.wav")):
        digit, speaker, take = path.stem.split("_")
        if speaker in speakers and (takes is None or int(take) < takes):
            out.append(path)
    return out


def digit_of(path) -> int:
    return int(Path(path).stem.split("_")[0])


def scores(ranked: list[str], relevant: set[str]) -> tuple[float, float, float]:
    """precision@10, R-precision, average precision of one ranking (unranked relevant clips: never found)."""
    hits = np.asarray([p in relevant for p in ranked], dtype=float)
    r = len(relevant)
    found = np.cumsum(hits)
    ap = float((found / np.arange(1, len(hits) + 1) * hits).sum() / r) if len(hits) else 0.0
    return float(hits[:10].sum() / 10), float(hits[:r].sum() / r), ap


def evaluate(rank, test: list[Path]) -> dict:
    """rank(word) -> list of paths, best first; averaged over the ten digit words."""
    rows = []
    for digit, word in enumerate(WORDS):
        relevant = {str(p) for p in test if digit_of(p) == digit}
        rows.append(scores(rank(word), relevant))
    p10, rprec, ap = np.mean(rows, axis=0)
    return {"p@10": p10, "R-prec": rprec, "mAP": ap, "per_word_ap": [round(r[2], 3) for r in rows]}


def learned_only(collection, word: str) -> list[str]:
    """Recordings by the learned cosine alone: the best sound window of each, no transcript."""
    attached = collection.attached_space()
    catalog = collection.catalog
    ids, vectors = catalog.vectors(attached.name)
    query = attached.embed_text(collection.experts.query_vectors([word]))[0]
    similarity = vectors @ query
    best: dict[str, float] = {}
    for row, score in zip(catalog.segments(ids.tolist()), similarity.tolist()):
        best[row.path] = max(best.get(row.path, -np.inf), score)
    return sorted(best, key=best.get, reverse=True)


def reweighted(space: Path, weight: float) -> Path:
    """A copy of the space folder with another w in align.json (a new content id, so a new attach)."""
    import json

    out = space.with_name(f"{space.name}-w{weight:g}")
    out.mkdir(exist_ok=True)
    for name in ("space.safetensors", "space.json"):
        shutil.copyfile(space / name, out / name)
    info = json.loads((space / "align.json").read_text(encoding="utf-8"))
    info["weight"] = weight
    (out / "align.json").write_text(json.dumps(info), encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="index 100 of nicolas's clips instead of 500")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_speech_space.md"))
    parser.add_argument("--weights", default="2,4", help="extra w values to try for (b), comma-separated "
                        "(sensitivity only: chosen on the test speaker, so not a fair pick)")
    args = parser.parse_args()
    train = clips(args.data, TRAIN_SPEAKERS)
    test = clips(args.data, (TEST_SPEAKER,), takes=10 if args.quick else None)
    if not train or not test:
        raise SystemExit(f"FSDD clips not found under {args.data}")

    work = Path(tempfile.mkdtemp(prefix="speech-space-"))
    with open(work / "pairs.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip", "words", "digit"])
        writer.writerows([str(p), WORDS[digit_of(p)], digit_of(p)] for p in train)
    (work / "align.toml").write_text(TOML.format(cache=FEATURES), encoding="utf-8")
    began = time.perf_counter()
    summary = run_align(work / "align.toml", work / "space")
    align_seconds = time.perf_counter() - began
    print(f"space trained in {align_seconds:.1f} s (w = {summary['weight']}, train R@1 "
          f"{summary['metrics_train']['pairs']['r1_right_to_left']})", flush=True)

    folder = Path(tempfile.gettempdir()) / f"speech-space-nicolas-{len(test)}"  # stable: reruns reuse the index
    folder.mkdir(exist_ok=True)
    for path in test:  # copies outside the repo (the scan skips symlinks); copy2 keeps mtimes
        if not (folder / path.name).is_file():
            shutil.copy2(path, folder / path.name)
    collection = Collection(CACHE / f"speech-space-collection-{len(test)}", experts=ExpertConfig(ocr=False))
    collection.detach_space()
    began = time.perf_counter()
    report = collection.index(folder)
    index_seconds = time.perf_counter() - began
    print(f"indexed {report.added + report.updated} new clips in {index_seconds:.1f} s "
          f"({report.unchanged + report.touched} reused)", flush=True)
    by_name = {p.name: str(p) for p in test}

    def collection_rank(word: str) -> list[str]:
        return [by_name[Path(h.path).name] for h in collection.search(word, modality="audio", k=len(test))]

    results = {"(a) collection, no space (transcripts)": evaluate(collection_rank, test)}
    attached = collection.attach_space(work / "space")
    results[f"(b) collection + attached space, w = {summary['weight']:g} (default)"] = evaluate(collection_rank, test)
    results["(c) learned space alone"] = evaluate(
        lambda w: [by_name[Path(p).name] for p in learned_only(collection, w)], test)
    for weight in [float(w) for w in args.weights.split(",") if w.strip()]:
        folder_w = reweighted(work / "space", weight)
        collection.attach_space(folder_w)
        results[f"(b') same space, w = {weight:g} (sensitivity)"] = evaluate(collection_rank, test)
    collection.detach_space()
    collection.close()
    write_report(args, summary, results, attached, len(train), len(test), align_seconds, index_seconds, report)


def write_report(args, summary, results, attached, n_train, n_test, align_seconds, index_seconds, report) -> None:
    command = ".venv/bin/python -m benchmarks.quality.speech_space" + (" --quick" if args.quick else "")
    lines = [
        "# Speech space: text -> recording retrieval on FSDD (nicolas held out)",
        "",
        f"- date: 2026-11-27; command: `{command}`",
        f"- machine: shared 2-core CPU ({platform.machine()}, Python {platform.python_version()}), "
        "other jobs running: timings are indicative",
        f"- space: audio (Whisper base pooled, L2-normalised, 512) + text (MiniLM 384) heads, linear, 128-d, "
        f"InfoNCE, 30 epochs, trained on {n_train} clips of george/jackson/lucas paired with their digit word; "
        f"w = {summary['weight']:g}; align {align_seconds:.1f} s (features "
        f"{summary['data'].get('cache_hits', 0)} cached / {summary['data'].get('cache_misses', 0)} computed)",
        f"- collection: {n_test} clips of nicolas; indexing this run {index_seconds:.1f} s "
        f"({report.added + report.updated} embedded, {report.unchanged + report.touched} reused from an earlier run)",
        f"- attach: {attached['embedded']} sound windows embedded in {attached['seconds']:.2f} s",
        "- queries: the ten words zero..nine; relevant = nicolas's clips of that digit "
        f"({n_test // 10} each); ranking = all {n_test} clips (search k = {n_test}, kind audio)",
        "",
        "| method | P@10 | R-precision | mAP |",
        "|---|---|---|---|",
    ]
    for name, row in results.items():
        lines.append(f"| {name} | {row['p@10']:.3f} | {row['R-prec']:.3f} | {row['mAP']:.3f} |")
    lines += ["", "Average precision per query word (zero..nine):", ""]
    for name, row in results.items():
        lines.append(f"- {name}: {row['per_word_ap']}")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
