"""Emergent audio<->text alignment through an image hub (ImageBind-style) on spoken and written digits.

    .venv/bin/python -m benchmarks.quality.emergent_digits [--quick] [--data DIR] [--out FILE]

Modalities and frozen experts:
  audio  FSDD spoken digits -> Whisper base encoder, mean-pooled over the frames that hold audio (512-d)
  image  MNIST digits (28x28 grey -> RGB, squashed to 224x224) -> EfficientNet-Lite0 native features (1280-d)
  text   digit words and templates ("seven", "the digit seven", "a handwritten 7" ...) -> MiniLM (384-d)
Edges trained: audio<->image (each training clip paired with a random MNIST training image of its
digit) and image<->text (each MNIST training image with a random template of its digit). NEVER
audio<->text. The text head is frozen at the identity, so the space is MiniLM's own space, and the
image head is the hub that audio and text both meet.

Split: audio trains on speakers george, jackson, lucas; nicolas is held out for every audio figure.
Images train on a pool drawn from the MNIST training split; tests use the first 1,000 MNIST test images.
Frozen features are cached under .benchmarks-cache/emergent-features (only the first run pays).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from sensorium.align.audio_features import audio_extractor
from sensorium.align.bind import Edge, train_bound_space
from sensorium.align.features import Extractor, FeatureCache, cache_checksum, file_key, text_extractor
from sensorium.align.train import AlignConfig

ROOT = Path(__file__).resolve().parents[2]

DEFAULT_DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".benchmarks-cache" / "emergent-features"
COLD_FILE = CACHE / "cold_extraction.json"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = ["{word}", "the digit {word}", "the number {word}", "a handwritten {digit}", "a handwritten {word}",
             "a picture of the digit {digit}", "{digit}"]
TRAIN_SPEAKERS, TEST_SPEAKER = ("george", "jackson", "lucas"), "nicolas"
IMAGE_POOL_PER_DIGIT, TEST_IMAGES = 200, 1000


# ---------------------------------------------------------------- data and frozen features

def fsdd_clips(folder: Path, speakers) -> tuple[list[Path], np.ndarray]:
    paths = sorted(p for p in folder.glob("*.wav") if p.stem.split("_")[1] in speakers)
    return paths, np.asarray([int(p.stem.split("_")[0]) for p in paths])


def mnist_extractor(resize: str = "direct") -> Extractor:
    """MNIST (28, 28) uint8 arrays -> {"image": (n, 1280)} EfficientNet native features, grey copied to RGB."""
    from sensorium.experts.base import sha256_of
    from sensorium.experts.image import ImageExpert

    expert = ImageExpert(resize=resize)

    def extract(digits: list) -> dict[str, np.ndarray]:
        return {"image": expert.run([np.repeat(d[:, :, None], 3, axis=2) for d in digits]).features}

    return Extractor("mnist-efficientnet-lite0", cache_checksum(sha256_of(expert.weights_path()), resize), extract, 32)


def image_key(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def record_cold(cache: FeatureCache, name: str, before: tuple[int, float]) -> None:
    """Accumulate extraction time of cache misses per expert, so the cold cost survives later cached runs."""
    misses, seconds = cache.stats.misses - before[0], cache.stats.extract_seconds - before[1]
    if misses == 0:
        return
    cold = json.loads(COLD_FILE.read_text()) if COLD_FILE.is_file() else {}
    entry = cold.setdefault(name, {"seconds": 0.0, "items": 0})
    entry["seconds"] += seconds
    entry["items"] += misses
    COLD_FILE.write_text(json.dumps(cold, indent=1))


class Data:
    def __init__(self, data: Path):
        timings = {}
        cache = FeatureCache(CACHE)
        self.cache = cache
        train_paths, self.train_digits = fsdd_clips(data / "fsdd", TRAIN_SPEAKERS)
        test_paths, self.test_digits = fsdd_clips(data / "fsdd", (TEST_SPEAKER,))
        start, before = time.perf_counter(), (cache.stats.misses, cache.stats.extract_seconds)
        audio = cache.features(audio_extractor(), train_paths + test_paths,
                               [file_key(p) for p in train_paths + test_paths])["audio"]
        record_cold(cache, "audio", before)
        timings["audio"] = time.perf_counter() - start
        self.train_audio, self.test_audio = audio[:len(train_paths)], audio[len(train_paths):]

        mnist = np.load(data / "mnist" / "mnist.npz")
        pool = np.concatenate([np.flatnonzero(mnist["y_train"] == d)[:IMAGE_POOL_PER_DIGIT] for d in range(10)])
        self.pool_digits = mnist["y_train"][pool].astype(int)
        self.test_image_digits = mnist["y_test"][:TEST_IMAGES].astype(int)
        pixels = list(mnist["x_train"][pool]) + list(mnist["x_test"][:TEST_IMAGES])
        start, before = time.perf_counter(), (cache.stats.misses, cache.stats.extract_seconds)
        images = cache.features(mnist_extractor(), pixels, [image_key(p) for p in pixels])["image"]
        record_cold(cache, "image", before)
        timings["image"] = time.perf_counter() - start
        self.pool_images, self.test_images = images[:len(pool)], images[len(pool):]

        self.texts = [t.format(word=WORDS[d], digit=d) for d in range(10) for t in TEMPLATES]
        self.text_digits = np.repeat(np.arange(10), len(TEMPLATES))
        start, before = time.perf_counter(), (cache.stats.misses, cache.stats.extract_seconds)
        text = cache.text_features(text_extractor(), self.texts + WORDS)["text"]
        record_cold(cache, "text", before)
        timings["text"] = time.perf_counter() - start
        self.text_features, self.word_features = text[:len(self.texts)], text[len(self.texts):]
        self.timings = timings


def random_of_digit(digits: np.ndarray, pool_digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each digit, the index of a random pool member with that digit."""
    by_digit = {d: np.flatnonzero(pool_digits == d) for d in range(10)}
    return np.asarray([rng.choice(by_digit[d]) for d in digits])


# ---------------------------------------------------------------- training and evaluation

def edges_for(data: Data, kind: str, audio_rows: np.ndarray, seed: int) -> dict:
    """kind "emergent": audio<->image + image<->text; kind "direct": audio<->text + image<->text."""
    rng = np.random.default_rng(seed)
    digits = data.train_digits[audio_rows]
    text_for_images = random_of_digit(data.pool_digits, data.text_digits, rng)
    edges = {("image", "text"): Edge(data.pool_images, data.text_features[text_for_images], groups=data.pool_digits)}
    if kind == "emergent":
        images = random_of_digit(digits, data.pool_digits, rng)
        edges[("audio", "image")] = Edge(data.train_audio[audio_rows], data.pool_images[images], groups=digits)
    else:
        texts = random_of_digit(digits, data.text_digits, rng)
        edges[("audio", "text")] = Edge(data.train_audio[audio_rows], data.text_features[texts], groups=digits)
    return edges


def evaluate(space, data: Data, draws: int, seed: int) -> dict[str, float]:
    audio = space.embed("audio", data.test_audio)
    images = space.embed("image", data.test_images)
    words = space.embed("text", data.word_features)
    out = {"a2t": float(((audio @ words.T).argmax(1) == data.test_digits).mean()),
           "i2t": float(((images @ words.T).argmax(1) == data.test_image_digits).mean()),
           "a2i1000": float((data.test_image_digits[(audio @ images.T).argmax(1)] == data.test_digits).mean())}
    rng = np.random.default_rng(seed)
    by_digit = [np.flatnonzero(data.test_image_digits == d) for d in range(10)]
    hits = []
    for _ in range(draws):  # one random test image per digit: a 10-way choice
        gallery = np.asarray([rng.choice(rows) for rows in by_digit])
        hits.append(((audio @ images[gallery].T).argmax(1) == data.test_digits).mean())
    out["a2i10"] = float(np.mean(hits))
    return out


def train(data: Data, kind: str, config: AlignConfig, audio_rows: np.ndarray | None = None, seed: int = 0):
    rows = np.arange(len(data.train_audio)) if audio_rows is None else audio_rows
    return train_bound_space(edges_for(data, kind, rows, seed), config, frozen=("text",), identity=("text",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="fewer epochs, 1 seed for the sample-efficiency rows")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_emergent.md"))
    args = parser.parse_args()
    if not (args.data / "fsdd").is_dir() or not (args.data / "mnist" / "mnist.npz").is_file():
        sys.exit(f"fsdd/ and mnist/mnist.npz not found under {args.data}")
    CACHE.mkdir(parents=True, exist_ok=True)

    data = Data(args.data)
    extraction = dict(data.timings)
    stats = data.cache.stats
    print(f"features ready: {stats.hits} cached, {stats.misses} computed in {stats.extract_seconds:.1f} s", flush=True)

    seeds = (0,) if args.quick else (0, 1, 2)
    config = AlignConfig(dim=384, head="linear", epochs=4 if args.quick else 12, batch_size=10, lr=1e-3,
                         weight_decay=0.01, warmup_steps=20, seed=0)
    train_seconds, train_pairs = 0.0, 0
    rows: dict[str, list[dict]] = {}
    for kind in ("emergent", "direct"):
        for seed in seeds:
            result = train(data, kind, AlignConfig(**{**config.__dict__, "seed": seed}), seed=seed)
            train_seconds += result.seconds
            train_pairs += int(round(result.pairs_per_second * result.seconds))
            rows.setdefault(kind, []).append(evaluate(result.space, data, 20, seed))
            print(kind, seed, rows[kind][-1], f"{result.seconds:.1f} s", flush=True)

    n_audio = len(data.train_audio)
    efficiency: dict[int, list[float]] = {}
    for pairs in (10, 100, 1000, n_audio):
        for seed in seeds:
            chosen = np.sort(np.random.default_rng(100 + seed).choice(n_audio, pairs, replace=False))
            result = train(data, "emergent", AlignConfig(**{**config.__dict__, "seed": seed}), chosen, seed)
            train_seconds += result.seconds
            train_pairs += int(round(result.pairs_per_second * result.seconds))
            efficiency.setdefault(pairs, []).append(evaluate(result.space, data, 5, seed)["a2t"])
        print("pairs", pairs, efficiency[pairs], flush=True)

    report(args, data, config, seeds, rows, efficiency, train_seconds, train_pairs, extraction)


def report(args, data, config, seeds, rows, efficiency, train_seconds, train_pairs, extraction) -> None:
    def mean_std(values) -> str:
        values = 100 * np.asarray(values)
        return f"{values.mean():.1f}" + (f" ± {values.std():.1f}" if len(values) > 1 else "")

    cold = json.loads(COLD_FILE.read_text()) if COLD_FILE.is_file() else {}
    names = {"emergent": "emergent: trained audio<->image + image<->text only",
             "direct": "(a) direct: trained audio<->text + image<->text"}
    lines = [
        "# Emergent audio<->text alignment through an image hub (FSDD + MNIST)",
        "",
        "- date: 2026-11-27",
        f"- command: `.venv/bin/python -m benchmarks.quality.emergent_digits{' --quick' if args.quick else ''}`",
        f"- machine: shared 2-core CPU with other jobs running ({platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}); timings are pessimistic",
        f"- data: FSDD train speakers {', '.join(TRAIN_SPEAKERS)} ({len(data.train_audio)} clips), held-out speaker "
        f"{TEST_SPEAKER} ({len(data.test_audio)} clips); MNIST train pool {len(data.pool_images)} images "
        f"({IMAGE_POOL_PER_DIGIT} per digit, first of each class), MNIST test = first {len(data.test_images)} "
        "test images",
        "- experts (frozen): Whisper base encoder mean-pooled over audio frames (512-d); EfficientNet-Lite0 native "
        "1280-d (28x28 grey -> RGB -> 224x224); MiniLM-L6 (384-d) for texts; text templates: "
        + ", ".join(f"`{t}`" for t in TEMPLATES),
        f"- space: 384-d = MiniLM's space (text head frozen at the identity); audio and image heads {config.head}; "
        f"InfoNCE per edge (own temperature), losses of all edges summed every step; batch {config.batch_size} "
        f"pairs per edge (pairs of one digit never each other's negatives), AdamW lr {config.lr} wd "
        f"{config.weight_decay}, warm-up + cosine, {config.epochs} epochs of the largest edge; seeds {list(seeds)} "
        "(seed also redraws the random pairings)",
        "- class texts at test time: the ten bare words \"zero\" .. \"nine\"",
        "",
        "## Accuracy (%) on held-out speaker nicolas and MNIST test (mean ± std over seeds)",
        "",
        "| model | audio->text (10 words) | audio->image R@1 (1,000 images) | audio->image R@1 (1 image per digit) "
        "| image->text (10 words) |",
        "|---|---|---|---|---|",
    ]
    for kind, label in names.items():
        r = rows[kind]
        cells = [mean_std([x[k] for x in r]) for k in ("a2t", "a2i1000", "a2i10", "i2t")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "| (b) chance | 10.0 | ~10.0 (share of the top image's digit) | 10.0 | 10.0 |",
        "| (c) core zero-shot speech classifier (Whisper `score_candidates`, BENCHMARKS.md, not rerun) "
        "| 88.8 (nicolas, all 50 takes) | - | - | - |",
        "",
        "audio->image R@1 counts a hit when the top-ranked image shows the clip's digit; \"1 image per digit\" "
        "averages 20 random draws of one MNIST test image per digit.",
        "",
        "## Sample efficiency: emergent audio->text accuracy on nicolas (%) vs audio<->image training pairs",
        "",
        "| audio<->image pairs | audio->text |",
        "|---|---|",
    ]
    for pairs, values in efficiency.items():
        lines.append(f"| {pairs}{' (all)' if pairs == len(data.train_audio) else ''} | {mean_std(values)} |")
    lines += ["", "(the image<->text edge always uses the whole image pool; pairs drawn at random, so 10 pairs "
              "may miss a digit)", "", "## Speed", "",
              f"- projection training: {train_pairs / max(train_seconds, 1e-9):.0f} pairs/s, {train_seconds:.1f} s "
              f"for all {len(seeds) * (2 + len(efficiency))} trainings (1 torch thread, pairs summed over edges)",
              "- frozen features this run: " + ", ".join(f"{k} {v:.1f} s" for k, v in extraction.items())
              + f" ({data.cache.stats.hits} cache hits, {data.cache.stats.misses} computed)"]
    for name, entry in cold.items():
        rate = entry["items"] / max(entry["seconds"], 1e-9)
        lines.append(f"- cold extraction (first run, no cache), {name}: {entry['seconds']:.1f} s for "
                     f"{entry['items']} items ({rate:.1f} items/s)")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
