"""Questions parsed into programs by a model trained with `sensorium train`, then executed on the
scene as perceived: the question-answering pipeline of NS-VQA (Yi et al. 2018) with learned parts,
objects still located by the annotations.

    .venv/bin/python -m benchmarks.quality.world_parser [--epochs 4]   (after world_perception.py)

The parser reads the question with a small text transformer and classifies each slot of the
program (`sensorium.world.program.SLOTS`: the operation, the attribute asked, the relation, and
four attributes of each of two object filters, "none" where empty); the slots are turned back into
a program (`unflatten`). It trains on A-train's questions (their programs regenerated from the
seeds) and is scored on A-test and B-fresh by exact program match, then by the answers its
programs give on the scenes as perceived by world_perception.py's models (colour from the RGB
model, shape from the colour-blind one).
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

CONFIG = """
[data]
train = "{train}"
val_fraction = 0.1
label = "op"

[data.modalities.question]
kind = "text"
max_length = 32
vocab_size = 400

[model.encoders.question]
name = "text_transformer"
dim = 96
depth = 2
heads = 4
max_length = 32

[model.fusion]
method = "late"
output_dim = 128
hidden = 128

{tasks}
[train]
epochs = {epochs}
batch_size = 128
lr = 2e-3
warmup_steps = 50
seed = 0
patience = 3
metric = "accuracy"
"""


def column(slot: str) -> str:
    return slot.replace(".", "_")


def manifest(folder: Path, out: Path) -> tuple[Path, list[dict]]:
    """questions with their programs' slots, one JSON line each (programs regenerated from the seed)."""
    from benchmarks.quality.world_perception import world_spec
    from sensorium.world import read_scenes
    from sensorium.world.program import flatten
    from sensorium.world.writer import scene_record

    spec = world_spec(folder)
    rows = []
    for record in read_scenes(folder):
        for question in scene_record(spec, record["scene"])[0]["questions"]:
            rows.append({"scene": record["scene"], "question": question["question"], "answer": question["answer"],
                         "family": question["family"], "program": question["program"],
                         **{column(k): v for k, v in flatten(question["program"]).items()}})
    if not out.exists():
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out, rows


def parse(run: Path, data: Path) -> list[dict]:
    import torch
    from torch.utils.data import DataLoader

    from sensorium.training.data import open_dataset
    from sensorium.training.evaluate import predict
    from sensorium.training.runs import load_run
    from sensorium.world.program import SLOTS, unflatten

    config, model, classes, collate = load_run(run)
    dataset = open_dataset(data, config, classes)
    with torch.inference_mode():
        logits, _ = predict(model, DataLoader(dataset, batch_size=256, collate_fn=collate))
    chosen = {slot: [classes[column(slot)][i] for i in logits[column(slot)].argmax(1).tolist()] for slot in SLOTS}
    programs = []
    for i in range(len(dataset)):
        try:
            programs.append(unflatten({slot: chosen[slot][i] for slot in SLOTS}))
        except (ValueError, KeyError):
            programs.append({})
    return programs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--scenes", type=int, default=6000)
    parser.add_argument("--test-scenes", type=int, default=600)
    args = parser.parse_args()
    from benchmarks.quality.world_perception import colour_blind, crops, fresh_b, perceived_scenes, predictions
    from benchmarks.quality.world_vqa import make_worlds
    from sensorium.world.program import SLOTS, execute

    folders = make_worlds(args.scenes, args.test_scenes)
    folders["B-fresh"] = fresh_b(args.test_scenes)
    began = time.perf_counter()
    data = {name: manifest(folder, CACHE / f"parser-{folder.name}.jsonl") for name, folder in folders.items()
            if name != "B-test"}
    print(f"manifests in {time.perf_counter() - began:.1f} s: "
          + ", ".join(f"{k} {len(v[1])}" for k, v in data.items()), flush=True)
    tasks = "".join(f'[[tasks]]\nname = "{column(s)}"\nlabel = "{column(s)}"\n\n' for s in SLOTS)
    config = CACHE / "world_parser.toml"
    config.write_text(CONFIG.format(train=data["A-train"][0], tasks=tasks, epochs=args.epochs))
    run = CACHE / f"parser-{args.scenes}-scenes-{args.epochs}-epochs"
    if not (run / "best" / "model.safetensors").is_file():
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sensorium.cli", "train", str(config), "--out", str(run)], check=True)
        print(f"parser trained in {(time.perf_counter() - began) / 60:.1f} min", flush=True)
    rgb_run = CACHE / f"perception-{args.scenes}-scenes-5-epochs"
    blind_run = CACHE / f"perception-colour-blind-{args.scenes}-scenes-5-epochs"
    print("\n| questions | exact program, A | B-fresh | answer on true scene, A | B-fresh | answer on perceived scene, A "
          "| B-fresh |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    table = {}
    for name in ("A-test", "B-fresh"):
        path, rows = data[name]
        programs = parse(run, path)
        crop_file = crops(folders[name], CACHE / f"crops-{folders[name].name}-{args.test_scenes}.npz")
        seen = predictions(rgb_run, crop_file)
        seen["shape"] = predictions(blind_run, colour_blind(crop_file))["shape"]
        truth, perceived = perceived_scenes(folders[name], seen)
        right: dict[str, list[tuple[bool, bool, bool]]] = defaultdict(list)
        for row, program in zip(rows, programs):
            exact = program == row["program"]
            on_truth = bool(program) and execute(program, truth[row["scene"]]) == row["answer"]
            on_seen = bool(program) and execute(program, perceived[row["scene"]]) == row["answer"]
            for key in ("all", row["family"]):
                right[key].append((exact, on_truth, on_seen))
        table[name] = {k: [sum(v[i] for v in vs) / len(vs) for i in range(3)] for k, vs in right.items()}
    for key in ("all", "exist", "count", "query_attribute", "compare_attribute", "compare_count", "relation",
                "unanswerable"):
        cells = [f"{table[n][key][i]:.3f}" for i in range(3) for n in ("A-test", "B-fresh")]
        print(f"| {key} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
