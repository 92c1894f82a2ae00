"""Text -> image on MNIST or Fashion-MNIST: does the picture show what the prompt asked for?

    .venv/bin/python -m benchmarks.quality.imagine_digits [--model mnist] [--dataset mnist|fashion] [--quick]

- **Prompt adherence**: the judge (`benchmarks.common.judge`, a CNN trained on the real training
  set, never shown to the generator) classifies generated pictures; the share classified as the
  prompted class, per class, for a training phrasing ("a handwritten seven") and for phrasings the
  generator never saw ("a picture of the number seven").
- **FID** on the judge's 128-d features (torchmetrics' FrechetInceptionDistance with a custom
  extractor; Inception's weights would download), generated vs the real test set, with the
  real-vs-real floor (two disjoint real sets of the same size) beside it.
- **CAS** (Ravuri & Vinyals 2019): the judge's network trained on generated pictures only, tested
  on the real test set; the same network trained on as many real pictures beside it. The guidance
  weight for CAS (of --cas-guidance, default 0, 1, 3) is the one whose classifier reads best a
  validation split of real training pictures; only that one is tested. Every CAS classifier takes
  as many optimiser steps as the judge took on the whole real set (--cas-train-steps), whatever
  the set's size: 3 epochs of 3,000 pictures left the real-trained one at 0.744 on validation
  garments, where 60 epochs give 0.877 (2026-12-06).
- **Diversity**: mean pairwise distance of judge features within a prompt, generated vs real.
- **Guidance sweep** (w = 0, 1, 3, 5): adherence and FID, plotted to docs/experiments/.
- **Speed**: pictures/s at 50 and 10 steps on one core (batches of 16, guidance on).
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common.judge import Judge, cached_judge, predict, train_judge

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".benchmarks-cache" / "imagine"
DATA = {"mnist": ROOT.parent / "shared" / "data" / "mnist" / "mnist.npz",
        "fashion": Path("/usr/share/datasets/fashion-mnist")}
# Phrasings the generator was never trained on (training.imagining has its own); chosen before any run
UNSEEN = {"mnist": ["a picture of the number {word}", "digit {word}", "write a {word}"],
          "fashion": ["an image of {phrase}", "{bare} for sale", "a catalogue picture of {phrase}"]}
SEEN = {"mnist": "a handwritten {word}", "fashion": "a photo of {phrase}"}
GUIDANCE = [0.0, 1.0, 3.0, 5.0]
JUDGE_EPOCHS, JUDGE_BATCH = 3, 128
JUDGE_STEPS = JUDGE_EPOCHS * -(-60_000 // JUDGE_BATCH)  # 1,407: the judge's steps on either training set


def cas_epochs(count: int, steps: int = JUDGE_STEPS) -> int:
    """Epochs over COUNT pictures that make about STEPS optimiser steps (at least the judge's 3)."""
    return max(JUDGE_EPOCHS, round(steps / -(-count // JUDGE_BATCH)))


def load(dataset: str, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if dataset == "mnist":
        with np.load(path) as d:
            return d["x_train"], d["y_train"].astype(np.int64), d["x_test"], d["y_test"].astype(np.int64)
    from sensorium.training.sources import read_idx

    return (read_idx(path / "train-images-idx3-ubyte.gz"), read_idx(path / "train-labels-idx1-ubyte.gz").astype(np.int64),
            read_idx(path / "t10k-images-idx3-ubyte.gz"), read_idx(path / "t10k-labels-idx1-ubyte.gz").astype(np.int64))


def prompts(dataset: str, template: str) -> list[str]:
    from sensorium.training.imagining import DIGIT_WORDS

    if dataset == "mnist":
        return [template.format(word=w, digit=d) for d, w in enumerate(DIGIT_WORDS)]
    from sensorium.training.imagining import FASHION_NAMES, bare_noun

    return [template.format(phrase=names[0], bare=bare_noun(names[0])) for names in FASHION_NAMES]


def draw(imaginer, texts: list[str], per: int, steps: int, guidance: float, seed: int,
         cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`per` pictures of each prompt (batches of up to 64): (pictures, the prompt's class of each).

    Batch b of a prompt always starts from the same noise, so a larger `per` only adds pictures.
    With CACHE, each prompt's whole batches are kept (keyed by model, prompt, steps, weight and
    seed) and a later run draws only what it lacks: CAS draws tens of thousands of pictures."""
    from rich.progress import Progress

    from sensorium.generation.imagine import sample, to_pixels

    embeddings = imaginer.embed(texts)
    pictures, classes = [], []
    with Progress(transient=True) as bar:
        task = bar.add_task(f"drawing w={guidance:g}, {steps} steps", total=per * len(texts))
        for c, embedding in enumerate(embeddings):
            path, kept, stored = None, [], 0
            if cache is not None:
                digest = hashlib.sha256(texts[c].encode()).hexdigest()[:12]
                path = cache / f"drawn-{imaginer.model_id}-{digest}-s{steps}-w{guidance:g}-seed{seed}.npy"
                if path.is_file():
                    whole = np.load(path)
                    stored = len(whole)
                    kept = [whole[:min(per, stored // 64 * 64)]]
                    bar.advance(task, len(kept[0]))
            for start in range(sum(len(k) for k in kept), per, 64):
                count = min(64, per - start)
                generator = torch.Generator().manual_seed(seed * 100_003 + c * 1_009 + start)
                x = sample(imaginer.model, embedding.expand(count, -1).contiguous(), steps, guidance, generator)
                kept.append(to_pixels(x, imaginer.config.image_size))
                bar.advance(task, count)
            drawn = np.concatenate(kept)
            if path is not None and len(drawn) // 64 * 64 > stored:
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_suffix(".tmp.npy")
                np.save(temporary, drawn[:len(drawn) // 64 * 64])
                temporary.replace(path)
            pictures.append(drawn)
            classes.append(np.full(len(drawn), c))
    return np.concatenate(pictures), np.concatenate(classes)


def fid(judge: Judge, real: np.ndarray, fake: np.ndarray) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=judge, reset_real_features=True)
    for batch, is_real in ((real, True), (fake, False)):
        for start in range(0, len(batch), 500):
            metric.update(torch.from_numpy(batch[start:start + 500])[:, None], real=is_real)
    return float(metric.compute())


def diversity(features: np.ndarray, classes: np.ndarray) -> float:
    """Mean pairwise Euclidean distance of features within each class, averaged over classes."""
    values = []
    for c in np.unique(classes):
        f = torch.from_numpy(features[classes == c])
        d = torch.cdist(f, f)
        n = len(f)
        values.append(float(d.sum() / max(n * (n - 1), 1)))
    return float(np.mean(values))


def adherence(judge: Judge, pictures: np.ndarray, classes: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    predicted, features = predict(judge, pictures)
    per_class = np.array([np.mean(predicted[classes == c] == c) for c in np.unique(classes)])
    return float(np.mean(predicted == classes)), per_class, features


def balanced(images: np.ndarray, labels: np.ndarray, per: int, seed: int, skip: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`per` pictures of each class, drawn by seed; `skip` > 0 takes the next ones of the same draw
    (disjoint from the first `skip`)."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[skip:skip + per] for c in np.unique(labels)])
    return images[rows], labels[rows]


def cas_scores(imaginer, args, x_train, y_train, x_test, y_test) -> tuple[float, float, float, list[tuple[float, float]]]:
    """CAS at the guidance weight (of --cas-guidance) whose classifier scores best on a validation split
    of real training pictures, disjoint from the real-trained baseline's: (test CAS, that weight,
    the baseline's test accuracy, [(weight, validation CAS)]). The test set is read once, at the end."""
    texts = prompts(args.dataset, SEEN[args.dataset])
    real_x, real_y = balanced(x_train, y_train, args.cas_per, seed=args.seed)
    valid_x, valid_y = balanced(x_train, y_train, args.cas_per, seed=args.seed, skip=args.cas_per)
    tried, models = [], {}
    for w in (float(v) for v in args.cas_guidance.split(",")):
        fake_x, fake_y = draw(imaginer, texts, args.cas_per, args.cas_steps, w, args.seed + 7, CACHE)
        models[w] = train_judge(fake_x, fake_y, epochs=cas_epochs(len(fake_x), args.cas_train_steps), seed=args.seed,
                                progress=f"CAS classifier, w={w:g}")
        tried.append((w, float(np.mean(predict(models[w], valid_x)[0] == valid_y))))
    best = max(tried, key=lambda t: t[1])[0]
    cas = float(np.mean(predict(models[best], x_test)[0] == y_test))
    same = train_judge(real_x, real_y, epochs=cas_epochs(len(real_x), args.cas_train_steps), seed=args.seed,
                       progress="the same on as many real pictures")
    return cas, best, float(np.mean(predict(same, x_test)[0] == y_test)), tried


def speed(imaginer, steps: int, count: int = 16, repeats: int = 2) -> float:
    from sensorium.generation.imagine import sample

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        embedding = imaginer.embed(["a handwritten seven"])[0]
        embedding = embedding.expand(count, *embedding.shape).contiguous()
        sample(imaginer.model, embedding, 2, 3.0)  # warm-up
        began = time.perf_counter()
        for _ in range(repeats):
            sample(imaginer.model, embedding, steps, 3.0, torch.Generator().manual_seed(0))
        return count * repeats / (time.perf_counter() - began)
    finally:
        torch.set_num_threads(threads)


def plot(sweep: list[dict], floor: float, path: Path) -> None:
    """Adherence and FID against guidance, drawn with Pillow (no plotting library is installed)."""
    from PIL import Image, ImageDraw

    width, height, margin = 640, 360, 56
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    ws = [s["guidance"] for s in sweep]
    left, right, top, bottom = margin, width - margin, 30, height - margin

    def x_of(w):
        return left + (right - left) * (w - min(ws)) / max(max(ws) - min(ws), 1e-9)

    fids = [s["fid"] for s in sweep] + [floor]
    high = max(fids) * 1.1
    for name, values, colour, scale in (("adherence", [s["adherence"] for s in sweep], (31, 119, 180), 1.0),
                                        ("FID", [s["fid"] for s in sweep], (214, 39, 40), high)):
        points = [(x_of(w), bottom - (bottom - top) * v / scale) for w, v in zip(ws, values)]
        pen.line(points, fill=colour, width=3)
        for (px, py), v in zip(points, values):
            pen.ellipse((px - 4, py - 4, px + 4, py + 4), fill=colour)
            pen.text((px + 6, py - 14), f"{v:.3f}" if scale == 1.0 else f"{v:.1f}", fill=colour)
    floor_y = bottom - (bottom - top) * floor / high
    pen.line([(left, floor_y), (right, floor_y)], fill=(214, 39, 40), width=1)
    pen.text((right - 150, floor_y - 14), f"real-vs-real FID {floor:.1f}", fill=(214, 39, 40))
    pen.line([(left, bottom), (right, bottom)], fill="black")
    for w in ws:
        pen.text((x_of(w) - 4, bottom + 6), f"{w:g}", fill="black")
    pen.text((width // 2 - 60, bottom + 24), "guidance weight w", fill="black")
    pen.text((left, 8), "blue: prompt adherence (0-1)   red: FID on the judge's features (lower is better)",
             fill="black")
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    from sensorium.generation.imagine import load_imaginer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist", help="a shipped model or a run folder")
    parser.add_argument("--dataset", choices=list(DATA), default="mnist")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--per", type=int, default=100, help="pictures per prompt for adherence and FID")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cas-per", type=int, default=500, help="generated training pictures per class for CAS")
    parser.add_argument("--cas-steps", type=int, default=10)
    parser.add_argument("--cas-train-steps", type=int, default=JUDGE_STEPS,
                        help="optimiser steps of each CAS classifier (default: the judge's, 3 epochs of 60,000)")
    parser.add_argument("--cas-guidance", default="0,1,3",
                        help="guidance weights tried for CAS; the best on a validation split is tested")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20 per prompt, 50 per class for CAS, no sweep")
    parser.add_argument("--plot", type=Path, default=None, help="where the guidance plot goes")
    parser.add_argument("--no-sweep", action="store_true", help="skip the guidance sweep")
    parser.add_argument("--unseen", type=int, default=3, help="how many never-trained phrasings to score (0-3)")
    args = parser.parse_args(argv)
    path = args.data or DATA[args.dataset]
    if not path.exists():
        print(f"skipped: {args.dataset} data not found at {path}")
        return 0
    if args.quick:
        args.per, args.cas_per = 20, 50
    torch.set_num_threads(2)
    x_train, y_train, x_test, y_test = load(args.dataset, path)
    judge = cached_judge(x_train, y_train, CACHE)
    judged, _ = predict(judge, x_test)
    print(f"judge: {np.mean(judged == y_test):.4f} accuracy on the real test set ({len(y_test)} pictures)")
    imaginer = load_imaginer(args.model)
    print(f"model {imaginer.model_id} ({args.model}); {args.per} pictures per prompt, {args.steps} DDIM steps")
    real, real_classes = balanced(x_test, y_test, args.per, seed=args.seed)
    other, _ = balanced(x_test, y_test, args.per, seed=args.seed, skip=args.per)
    floor = fid(judge, real, other)
    _, real_features = predict(judge, real)
    real_diversity = diversity(real_features, real_classes)
    print(f"real-vs-real FID floor {floor:.2f} ({len(real)} vs {len(other)} other test pictures); real diversity "
          f"{real_diversity:.3f}")

    rows = []
    for label, template in [("seen phrasing", SEEN[args.dataset])] + [("unseen phrasing", t) for t in UNSEEN[args.dataset][:args.unseen]]:
        texts = prompts(args.dataset, template)
        pictures, classes = draw(imaginer, texts, args.per, args.steps, 3.0, args.seed)
        score, per_class, features = adherence(judge, pictures, classes)
        rows.append({"label": label, "template": template, "adherence": score, "per_class": per_class,
                     "fid": fid(judge, real, pictures), "diversity": diversity(features, classes),
                     "pictures": pictures, "classes": classes})
        print(f"{label:16s} {template!r:36s} adherence {score:.4f} (worst class {per_class.min():.2f}) "
              f"FID {rows[-1]['fid']:.2f} diversity {rows[-1]['diversity']:.3f}")
    print("\nper-class adherence, seen phrasing: " + " ".join(f"{v:.2f}" for v in rows[0]["per_class"]))
    unseen = [r for r in rows if r["label"] == "unseen phrasing"]
    if unseen:
        print(f"unseen phrasings, mean adherence {np.mean([r['adherence'] for r in unseen]):.4f}")

    sweep = []
    if not (args.quick or args.no_sweep):
        texts = prompts(args.dataset, SEEN[args.dataset])
        for w in GUIDANCE:
            if w == 3.0:
                pictures, classes = rows[0]["pictures"], rows[0]["classes"]
            else:
                pictures, classes = draw(imaginer, texts, args.per, args.steps, w, args.seed)
            score, _, features = adherence(judge, pictures, classes)
            sweep.append({"guidance": w, "adherence": score, "fid": fid(judge, real, pictures),
                          "diversity": diversity(features, classes)})
        print("\n| guidance w | adherence | FID (judge features) | diversity |\n|---|---|---|---|")
        for s in sweep:
            print(f"| {s['guidance']:g} | {s['adherence']:.4f} | {s['fid']:.2f} | {s['diversity']:.3f} |")
        print(f"| real test pictures | {np.mean(judged == y_test):.4f} (judge) | {floor:.2f} (floor) | {real_diversity:.3f} |")
        out = args.plot or ROOT / "docs" / "experiments" / f"imagine-{args.dataset}-guidance.png"
        plot(sweep, floor, out)
        print(f"plot: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")

    cas, best, baseline, tried = cas_scores(imaginer, args, x_train, y_train, x_test, y_test)
    print("\nCAS on a validation split of real training pictures (never the test set), by guidance: "
          + ", ".join(f"w={w:g} {v:.4f}" for w, v in tried))
    print(f"CAS: {cas:.4f} (w={best:g}, chosen on validation; trained on {args.cas_per} "
          f"generated per class, {args.cas_steps} steps, classifier {cas_epochs(len(np.unique(y_train)) * args.cas_per, args.cas_train_steps)} "
          f"epochs; tested on {len(y_test)} real); the same trained on as many real "
          f"training pictures: {baseline:.4f}")

    fast, slow = speed(imaginer, 10), speed(imaginer, 50)
    print(f"speed, one core, batches of 16, guidance on: {fast:.2f} pictures/s at 10 steps, {slow:.2f} at 50 steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
