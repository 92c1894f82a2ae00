"""COCO-mini through the real Collection.search path, with and without an attached learned space.

    .venv/bin/python -m benchmarks.quality.coco_attach [--out /tmp/bench_attach.md]

The 80 coco_mini photos are indexed once (collection cached under .benchmarks-cache). Fold 1 of
benchmarks/quality/coco_align.py's 5-fold split by photo: a space is trained on the 64 training photos'
captions (features read back from the catalog: native + shared vectors, as `sensorium align`
extracts them), w picked by inner 4-fold CV on those 64 photos (sensorium.align.job.choose_weight),
then attached. Each caption of the 16 held-out photos queries `Collection.search(modality="image")`;
recall counts its own photo's rank among the 16 held-out photos and among all 80. Attach speed is
measured on a synthetic catalog of 5,000 image segments (random stored vectors).
"""
from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.quality.coco_align import DEFAULT_DATA, folds, load_coco
from sensorium import Collection
from sensorium.align.job import AlignJob, PairFeatures, choose_weight, save_space
from sensorium.align.train import AlignConfig, train_space
from sensorium.index.catalog import FileState, NewSegment

ROOT = Path(__file__).resolve().parents[2]

CACHE = ROOT / ".benchmarks-cache"


def recall_through_search(collection, captions, owner, paths, test):
    """R@1/R@5 of caption -> photo among the 16 test photos and among all 80, via Collection.search."""
    name_of = [p.name for p in paths]
    test_names = {name_of[i] for i in test}
    ranks16, ranks80 = [], []
    for q in np.flatnonzero(np.isin(owner, test)):
        ranked = [Path(h.path).name for h in collection.search(captions[q], modality="image", k=len(paths))]
        own = name_of[owner[q]]
        ranks80.append(ranked.index(own) if own in ranked else len(paths))
        local = [n for n in ranked if n in test_names]
        ranks16.append(local.index(own) if own in local else len(test))
    r16, r80 = np.asarray(ranks16), np.asarray(ranks80)
    return {"16@1": (r16 < 1).mean(), "16@5": (r16 < 5).mean(), "80@1": (r80 < 1).mean(), "80@5": (r80 < 5).mean(),
            "queries": len(r16)}


def attach_speed(space_dir: Path, segments: int = 5000) -> float:
    folder = CACHE / "attach-speed-collection"
    shutil.rmtree(folder, ignore_errors=True)
    collection = Collection(folder)
    rng = np.random.default_rng(0)
    for start in range(0, segments, 500):  # one synthetic "video" item per 500 shots keeps setup fast
        vectors = [{"image": v[:1280] / np.linalg.norm(v[:1280]), "shared": v[1280:] / np.linalg.norm(v[1280:])}
                   for v in rng.standard_normal((500, 1664)).astype(np.float32)]
        collection.catalog.put_item(FileState(f"/synthetic/{start}.mp4", 1, 1, str(start)), "video", 1.0, {},
                                    [NewSegment(float(i), float(i + 1), "frame", vectors=v) for i, v in enumerate(vectors)])
    began = time.perf_counter()
    result = collection.attach_space(space_dir)
    seconds = time.perf_counter() - began
    assert result["vectors"] == segments
    collection.close()
    shutil.rmtree(folder, ignore_errors=True)
    return seconds * 1000 / segments


def all_folds(collection, paths, captions, owner, image_in, shared_m, text) -> list[str]:
    """The product's w rule (job.choose_weight) on each of the 5 folds: bridge alone vs bridge +
    w x learned, caption -> photo R@1/R@5 over the 16 held-out photos and over all 80, by cosine."""
    from sensorium.align.job import _t2i_recall

    config = AlignConfig(dim=256, head="linear", epochs=60, batch_size=64, lr=1e-3, weight_decay=0.01, seed=0)
    bridge = text @ shared_m.T
    lines = ["| fold | w (inner CV) | bridge R@1/16 | combined R@1/16 | bridge R@5/16 | combined R@5/16 | "
             "bridge R@1/80 | combined R@1/80 | bridge R@5/80 | combined R@5/80 |", "|---" * 10 + "|"]
    sums = np.zeros(8)
    for number, test in enumerate(folds(len(paths), 5), start=1):
        train = np.setdiff1d(np.arange(len(paths)), test)
        rows = np.flatnonzero(np.isin(owner, train))
        remap = {p: i for i, p in enumerate(train)}
        features = PairFeatures(image_in[train], shared_m[train], text[rows],
                                np.asarray([remap[p] for p in owner[rows]]), [str(paths[i]) for i in train])
        weight, _ = choose_weight(features, AlignJob(train=config, combine_folds=4))
        space = train_space(features.image_in[features.owner], features.text, "image", "text", config,
                            groups=features.owner).space
        learned = space.embed("text", text) @ space.embed("image", image_in).T
        queries = np.flatnonzero(np.isin(owner, test))
        local = {p: i for i, p in enumerate(test)}
        column16 = np.asarray([local[p] for p in owner[queries]])
        figures = []
        for w in (0.0, weight):
            scores = bridge[queries] + w * learned[queries]
            figures.append(_t2i_recall(scores[:, test], column16) + _t2i_recall(scores, owner[queries]))
        (b1, b5, b1a, b5a), (c1, c5, c1a, c5a) = figures
        row = np.array([b1, c1, b5, c5, b1a, c1a, b5a, c5a]) * 100
        sums += row
        lines.append(f"| {number} | {weight:g} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
        print(lines[-1], flush=True)
    lines.append("| mean | | " + " | ".join(f"{v:.1f}" for v in sums / 5) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_attach.md"))
    parser.add_argument("--all-folds", action="store_true",
                        help="only the 5-fold check of the w rule (bridge vs combined, by cosine), no attach")
    args = parser.parse_args()
    if not (args.data / "captions_train2017.json").is_file():
        sys.exit(f"coco_mini not found at {args.data}")
    paths, captions, owner = load_coco(args.data)
    collection = Collection(CACHE / "coco-attach-collection")
    collection.detach_space()
    began = time.perf_counter()
    report = collection.index(args.data / "images")
    index_seconds = time.perf_counter() - began
    catalog = collection.catalog
    by_name = {Path(r.path).name: r.id for r in catalog.segments(catalog.segment_ids({"image"}))}
    ids = [by_name[p.name] for p in paths]
    native = dict(zip(*catalog.vectors_for("image", ids)))
    shared = dict(zip(*catalog.vectors_for("shared", ids)))
    shared_m = np.stack([shared[i] for i in ids])
    image_in = np.concatenate([np.stack([native[i] for i in ids]), shared_m], axis=1)
    text = collection.experts.text.encode(captions)
    if args.all_folds:
        lines = ["# The w rule on all 5 folds of COCO-mini (`.venv/bin/python -m benchmarks.quality.coco_attach --all-folds`)", ""]
        lines += all_folds(collection, paths, captions, owner, image_in, shared_m, text)
        args.out.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return

    test = folds(len(paths), 5)[0]
    train = np.setdiff1d(np.arange(len(paths)), test)
    rows = np.flatnonzero(np.isin(owner, train))
    remap = {p: i for i, p in enumerate(train)}
    features = PairFeatures(image_in[train], shared_m[train], text[rows], np.asarray([remap[p] for p in owner[rows]]),
                            [str(paths[i]) for i in train])
    config = AlignConfig(dim=256, head="linear", epochs=60, batch_size=64, lr=1e-3, weight_decay=0.01, seed=0)
    job = AlignJob(train=config, combine_folds=4)
    began = time.perf_counter()
    weight, cv = choose_weight(features, job)
    result = train_space(features.image_in[features.owner], features.text, "image", "text", config,
                         groups=features.owner)
    train_seconds = time.perf_counter() - began
    space_dir = CACHE / "coco-attach-space"
    save_space(space_dir, result.space, weight, {"cv": cv, "history": result.history})
    forced_dir = CACHE / "coco-attach-space-w025"
    save_space(forced_dir, result.space, 0.25, {"history": result.history})

    rows_out = {"bridge alone (no space)": recall_through_search(collection, captions, owner, paths, test)}
    began = time.perf_counter()
    collection.attach_space(space_dir)
    attach_seconds = time.perf_counter() - began
    rows_out[f"attached space, w = {weight:g} (inner CV)"] = recall_through_search(collection, captions, owner, paths, test)
    if weight != 0.25:
        collection.attach_space(forced_dir)
        rows_out["attached space, w = 0.25 (fixed)"] = recall_through_search(collection, captions, owner, paths, test)
    collection.detach_space()
    rows_out["after detach"] = recall_through_search(collection, captions, owner, paths, test)
    per_thousand = attach_speed(space_dir)

    lines = ["# Attached learned space on COCO-mini, through Collection.search", "",
             "- date: 2026-11-27", "- command: `.venv/bin/python -m benchmarks.quality.coco_attach`",
             f"- machine: shared 2-core CPU with other jobs running ({platform.machine()}, python "
             f"{platform.python_version()})",
             f"- data: coco_mini, 80 photos indexed ({report.added} new this run, {index_seconds:.1f} s); fold 1 of "
             "benchmarks/quality/coco_align.py's 5-fold split by photo: 64 training photos (their captions train the "
             f"space), 16 held-out photos whose {rows_out['bridge alone (no space)']['queries']} captions are the queries",
             f"- space: linear heads 1664 -> 256 (image: native + shared) and 384 -> 256 (text), InfoNCE, 60 epochs; "
             f"w from inner 4-fold CV on the 64 training photos = {weight:g} (CV scores {cv}); training incl. CV "
             f"{train_seconds:.1f} s",
             "- search: `Collection.search(caption, modality=\"image\", k=80)` (hybrid: vector score + lexical bonus)", "",
             "| search | R@1 / 16 | R@5 / 16 | R@1 / 80 | R@5 / 80 |", "|---|---|---|---|---|"]
    for label, r in rows_out.items():
        lines.append(f"| {label} | {100 * r['16@1']:.1f} | {100 * r['16@5']:.1f} | {100 * r['80@1']:.1f} | "
                     f"{100 * r['80@5']:.1f} |")
    lines += ["", f"- attach on this collection (80 image segments): {attach_seconds:.2f} s",
              f"- attach speed on a synthetic catalog of 5,000 image segments: {per_thousand:.2f} s per 1,000 segments "
              "(read stored vectors, apply the head, commit in batches of 512, ANN add + save)"]
    text_out = "\n".join(lines) + "\n"
    args.out.write_text(text_out)
    print(text_out)


if __name__ == "__main__":
    main()
