"""Question answering on the procedural world with a model from stock parts, per question family,
on the training condition (A) and the compositional one (B): the baseline the issue's VQA model must beat.

    .venv/bin/python -m benchmarks.quality.world_vqa [--scenes 6000] [--epochs 6] [--config C] [--run DIR]

Makes three worlds in .benchmarks-cache/world (seeds apart): A-train, A-test and B-test (CLEVR-CoGenT:
cubes and cylinders swap colour sets), trains a config on A-train's questions through `sensorium train`:
examples/world_vqa.toml (a CNN over the 64 px picture, a small text transformer over the question,
cross-attention fusion, one answer classifier; nothing VQA-specific) or examples/world_vqa_film.toml
(the same encoders, FiLM fusion with coordinates); then scores every test
question and breaks the accuracy down by family, relational or not, and answerable or not, with the
precision and recall of "cannot tell". With --run, scores an existing run instead of training.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".benchmarks-cache" / "world"
WORLDS = {"A-train": ("A", 1), "A-test": ("A", 2), "B-test": ("B", 3)}


def make_worlds(scenes: int, test_scenes: int) -> dict[str, Path]:
    from sensorium.world import Condition, SceneOptions, WorldSpec, make_world

    folders = {}
    for name, (condition, seed) in WORLDS.items():
        count = scenes if name.endswith("train") else test_scenes
        folder = CACHE / f"{name}-seed{seed}"
        began = time.perf_counter()
        make_world(folder, count, WorldSpec(seed=seed, options=SceneOptions(condition=Condition(condition))))
        print(f"{name}: {count} scenes in {folder} ({time.perf_counter() - began:.1f} s)", flush=True)
        folders[name] = folder
    return folders


def train(folders: dict[str, Path], config_file: Path, epochs: int, out: Path) -> float:
    config = config_file.read_text()
    config = config.replace('"../worlds/A-train/questions.jsonl"', json.dumps(str(folders["A-train"] / "questions.jsonl")))
    config = config.replace('"../worlds/A-test/questions.jsonl"', json.dumps(str(folders["A-test"] / "questions.jsonl")))
    config = config.replace("epochs = 10", f"epochs = {epochs}")
    path = CACHE / config_file.name
    path.write_text(config)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sensorium.cli", "train", str(path), "--out", str(out)], check=True)
    return time.perf_counter() - began


def score(run: Path, manifest: Path) -> dict:
    """Per-question predictions of `run` on `manifest`, grouped the ways the issue asks."""
    import torch
    from torch.utils.data import DataLoader

    from sensorium.training.data import open_dataset
    from sensorium.training.runs import load_run
    from sensorium.world import CANNOT_TELL

    config, model, classes, collate = load_run(run)
    torch.set_num_threads(2)
    names = classes[config.tasks[0].name]
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    unseen = sorted({r["answer"] for r in rows} - set(names))
    if unseen:
        raise SystemExit(f"{manifest}: answers never seen in training: {unseen}")
    dataset = open_dataset(manifest, config, classes)
    model.eval()
    logits, maps = [], []
    began = time.perf_counter()
    with torch.inference_mode():
        for batch in DataLoader(dataset, batch_size=128, collate_fn=collate):
            logits.append(model(batch)[config.tasks[0].name])
            attention = getattr(model.fusion, "attention", None)  # FiLM: where each answer looked
            if attention is not None:
                maps.append(attention.clone())
    seconds = time.perf_counter() - began
    logits = {config.tasks[0].name: torch.cat(logits)}
    grounding = ground(rows, torch.cat(maps), manifest.parent) if maps else None
    predicted = [names[i] for i in logits[config.tasks[0].name].argmax(1).tolist()]
    groups: dict[str, list[bool]] = defaultdict(list)
    abstain = {"tp": 0, "fp": 0, "fn": 0}
    for row, guess in zip(rows, predicted):
        right = guess == row["answer"]
        groups["all"].append(right)
        groups[row["family"]].append(right)
        groups["relational" if row["relational"] else "non-relational"].append(right)
        groups["answerable" if row["answerable"] else "unanswerable (all)"].append(right)
        said_cannot, is_cannot = guess == CANNOT_TELL, row["answer"] == CANNOT_TELL
        abstain["tp"] += said_cannot and is_cannot
        abstain["fp"] += said_cannot and not is_cannot
        abstain["fn"] += is_cannot and not said_cannot
    accuracy = {k: (sum(v) / len(v), len(v)) for k, v in groups.items()}
    precision = abstain["tp"] / max(abstain["tp"] + abstain["fp"], 1)
    recall = abstain["tp"] / max(abstain["tp"] + abstain["fn"], 1)
    return {"accuracy": accuracy, "cannot_tell_precision": precision, "cannot_tell_recall": recall,
            "answers_per_s": len(rows) / seconds, "grounding": grounding}


def ground(rows: list[dict], maps, folder: Path) -> dict:
    """For questions about one object: does the attention map point at it? Three measures: the
    pointing game (the peak cell's centre within half a cell of the object's box), the share of
    attention on cells whose centres lie in that margin, and the box of the cells holding at least
    half the peak's weight overlapping the object's box with IoU >= 0.5 (the issue's measure)."""
    import torch

    from sensorium.world import read_scenes

    scenes = {record["scene"]: record for record in read_scenes(folder)}
    hits = shares = overlaps = count = 0
    for row, attention in zip(rows, maps):
        if len(row["objects"]) != 1 or not row["answerable"]:
            continue
        record = scenes[row["scene"]]
        x0, y0, x1, y1 = next(o["box"] for o in record["objects"] if o["id"] == row["objects"][0])
        rows_, cols = attention.shape
        cell_h, cell_w = record["size"] / rows_, record["size"] / cols
        ys = (torch.arange(rows_, dtype=torch.float32) + 0.5) * cell_h
        xs = (torch.arange(cols, dtype=torch.float32) + 0.5) * cell_w
        inside = (((ys >= y0 - cell_h / 2) & (ys <= y1 + cell_h / 2))[:, None]
                  & ((xs >= x0 - cell_w / 2) & (xs <= x1 + cell_w / 2))[None, :])
        peak = int(attention.flatten().argmax())
        hits += bool(inside.flatten()[peak])
        shares += float(attention[inside].sum())
        strong = (attention >= 0.5 * attention.max()).nonzero()
        bx0, by0 = float(strong[:, 1].min()) * cell_w, float(strong[:, 0].min()) * cell_h
        bx1, by1 = float(strong[:, 1].max() + 1) * cell_w, float(strong[:, 0].max() + 1) * cell_h
        overlap = max(0.0, min(x1, bx1) - max(x0, bx0)) * max(0.0, min(y1, by1) - max(y0, by0))
        union = (x1 - x0) * (y1 - y0) + (bx1 - bx0) * (by1 - by0) - overlap
        overlaps += overlap / union >= 0.5
        count += 1
    return {"questions": count, "pointing": hits / max(count, 1), "attention_share": shares / max(count, 1),
            "box_iou_50": overlaps / max(count, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=6000)
    parser.add_argument("--test-scenes", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "world_vqa.toml",
                        help="examples/world_vqa.toml (stock parts) or examples/world_vqa_film.toml (FiLM)")
    parser.add_argument("--run", type=Path, help="score this run instead of training one")
    args = parser.parse_args()
    folders = make_worlds(args.scenes, args.test_scenes)
    run = args.run or CACHE / f"run-{args.config.stem}-{args.scenes}-scenes-{args.epochs}-epochs"
    if args.run is None:
        seconds = train(folders, args.config, args.epochs, run)
        print(f"trained in {seconds / 60:.1f} min", flush=True)
    results = {name: score(run, folders[name] / "questions.jsonl") for name in ("A-test", "B-test")}
    (run / "world_vqa.json").write_text(json.dumps(results, indent=2))
    keys = ["all", "non-relational", "relational", "exist", "count", "query_attribute", "compare_attribute",
            "compare_count", "relation", "answerable", "unanswerable"]
    print("\n| questions | A-test accuracy | B-test accuracy | A - B | questions (A) |")
    print("|---|---:|---:|---:|---:|")
    for key in keys:
        a = results["A-test"]["accuracy"].get(key) or results["A-test"]["accuracy"].get(f"{key} (all)")
        b = results["B-test"]["accuracy"].get(key) or results["B-test"]["accuracy"].get(f"{key} (all)")
        if a and b:
            print(f"| {key} | {a[0]:.3f} | {b[0]:.3f} | {a[0] - b[0]:+.3f} | {a[1]} |")
    for name, result in results.items():
        print(f"{name}: 'cannot tell' precision {result['cannot_tell_precision']:.3f}, recall "
              f"{result['cannot_tell_recall']:.3f}; {result['answers_per_s']:.0f} answers/s (2 threads, batch 128)")
        if result["grounding"]:
            g = result["grounding"]
            print(f"  grounding, {g['questions']} questions about one object: pointing {g['pointing']:.3f}, attention "
                  f"on the object {g['attention_share']:.3f}, attended box IoU >= 0.5 {g['box_iou_50']:.3f}")


if __name__ == "__main__":
    main()
