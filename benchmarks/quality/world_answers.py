"""The world's question answerer as shipped (`sensorium world train --model vqa`, `sensorium world ask`):
accuracy per family on condition A and on the compositional condition B, "cannot tell" on
unanswerable questions, accuracy at each coverage, grounding, the parser's sample efficiency, and
answers/s on one core.

    .venv/bin/python -m benchmarks.quality.world_answers [--run DIR] [--skip-curves]

Worlds (seeds apart, as world_vqa.py's): A-train (6,000 scenes, seed 1) trains; A-test (600,
seed 2) and B-fresh (600, seed 4; cubes and cylinders in the colours A never gave them) judge.
A-questions (10,000 scenes of seed 11, pictures unused) gives the sample-efficiency curve its
100,000 questions. Nothing at test time comes from the annotations: they only score.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".benchmarks-cache" / "world"
FAMILIES = ("exist", "count", "query_attribute", "compare_attribute", "compare_count", "relation", "unanswerable")
KEYS = ("all", "non-relational", "relational", *FAMILIES, "answerable")


def world(name: str, scenes: int, condition: str, seed: int) -> Path:
    from sensorium.world import Condition, SceneOptions, WorldSpec, make_world

    folder = CACHE / f"{name}-seed{seed}"
    make_world(folder, scenes, WorldSpec(seed=seed, options=SceneOptions(condition=Condition(condition))))
    return folder


def grounded(answer, truth_boxes: list) -> bool:
    """Every object the question is about matched one to one by an object the answer looked at
    (box IoU >= 0.5), and nothing else looked at."""
    from sensorium.world.detector import iou

    if len(answer.objects) != len(truth_boxes):
        return False
    free = list(range(len(answer.objects)))
    for box in truth_boxes:
        match = next((i for i in free if iou(answer.objects[i].box, box) >= 0.5), None)
        if match is None:
            return False
        free.remove(match)
    return True


def score(vqa, folder: Path, parser=None) -> dict:
    """Every question of `folder` answered from its picture; grouped the ways the issue asks."""
    from sensorium.world import CANNOT_TELL
    from sensorium.world.writer import read_pictures

    if parser is not None:
        from sensorium.world.vqa import WorldVQA

        vqa = WorldVQA(vqa.detector, vqa.perception, parser)
    pictures, records = read_pictures(folder)
    right: dict[str, list[bool]] = defaultdict(list)
    ground: dict[str, list[bool]] = defaultdict(list)
    confident: list[tuple[float, bool]] = []
    abstain = {"tp": 0, "fp": 0, "fn": 0}
    for start in range(0, len(records), 50):
        chunk = records[start:start + 50]
        answers = vqa.ask_many(list(pictures[start:start + 50]), [[q["question"] for q in r["questions"]] for r in chunk])
        for record, said in zip(chunk, answers):
            boxes = {o["id"]: o["box"] for o in record["objects"]}
            for question, answer in zip(record["questions"], said):
                ok = answer.answer == question["answer"]
                for key in ("all", question["family"], "relational" if question["relational"] else "non-relational"):
                    right[key].append(ok)
                if question["answerable"]:
                    right["answerable"].append(ok)
                    # an abstention gives no answer: it comes last, whatever its confidence that it cannot tell
                    confident.append((-1.0 if answer.answer == CANNOT_TELL else answer.confidence, ok))
                    if question["objects"]:
                        hit = grounded(answer, [boxes[i] for i in question["objects"]])
                        ground["all with objects"].append(hit)
                        if len(question["objects"]) == 1:
                            ground["about one object"].append(hit)
                said_cannot, is_cannot = answer.answer == CANNOT_TELL, question["answer"] == CANNOT_TELL
                abstain["tp"] += said_cannot and is_cannot
                abstain["fp"] += said_cannot and not is_cannot
                abstain["fn"] += is_cannot and not said_cannot
    confident.sort(key=lambda pair: -pair[0])
    coverage = {}
    for share in (0.5, 0.8, 0.9, 1.0):
        kept = confident[: max(1, round(share * len(confident)))]
        coverage[share] = sum(ok for _, ok in kept) / len(kept)
    return {"accuracy": {k: (sum(v) / len(v), len(v)) for k, v in right.items()},
            "grounding": {k: (sum(v) / len(v), len(v)) for k, v in ground.items()},
            "cannot_tell_precision": abstain["tp"] / max(abstain["tp"] + abstain["fp"], 1),
            "cannot_tell_recall": abstain["tp"] / max(abstain["tp"] + abstain["fn"], 1),
            "answerable_accuracy_at_coverage": coverage, "answer_ece": expected_calibration_error(confident)}


def expected_calibration_error(confident: list[tuple[float, bool]], bins: int = 15) -> float:
    """ECE (15 equal-width bins) of `WorldAnswer.confidence` over the answers given (abstentions left out)."""
    given = [(c, ok) for c, ok in confident if c >= 0]
    if not given:
        return float("nan")
    conf = np.array([c for c, _ in given])
    right = np.array([ok for _, ok in given], dtype=float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(conf[which == b].mean() - right[which == b].mean()) * np.sum(which == b)
                     for b in range(bins) if np.any(which == b)) / len(given))


def detection_rates(vqa, folder: Path) -> tuple[float, float]:
    from sensorium.world.detector import iou
    from sensorium.world.writer import read_pictures

    pictures, records = read_pictures(folder)
    found = vqa.detector.detect(list(pictures))
    truth = [[o["box"] for o in r["objects"]] for r in records]
    hits = sum(any(iou(d.box, t) >= 0.5 for d in f) for f, ts in zip(found, truth) for t in ts)
    right = sum(any(iou(d.box, t) >= 0.5 for t in ts) for f, ts in zip(found, truth) for d in f)
    return hits / sum(map(len, truth)), right / max(sum(map(len, found)), 1)


def part_minutes(run: Path) -> dict[str, float]:
    """Each part's epoch time (minutes), from its metrics.jsonl."""
    minutes = {}
    for part in ("detector", "objects", "parser"):
        path = run / "runs" / part / "metrics.jsonl"
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            minutes[part] = sum(r.get("epoch_seconds", r.get("seconds", 0.0)) for r in rows) / 60
    return minutes


def speed(vqa, folder: Path) -> dict[str, float]:
    """Answers/s on one core: one question at a time (perceive + parse + execute each time), and
    ten questions per picture (the picture perceived once)."""
    import torch

    from sensorium.world.writer import read_pictures

    torch.set_num_threads(1)
    pictures, records = read_pictures(folder, 40)
    vqa.ask(pictures[0], records[0]["questions"][0]["question"])  # warm-up
    began = time.perf_counter()
    for picture, record in zip(pictures, records):
        vqa.ask(picture, record["questions"][0]["question"])
    single = len(records) / (time.perf_counter() - began)
    began = time.perf_counter()
    answers = vqa.ask_many(list(pictures), [[q["question"] for q in r["questions"]] for r in records])
    many = sum(map(len, answers)) / (time.perf_counter() - began)
    torch.set_num_threads(2)
    return {"one question per picture": single, "ten questions per picture": many}


def table(results: dict[str, dict], columns: list[str]) -> None:
    print("| questions | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for key in KEYS:
        cells = [f"{results[c]['accuracy'][key][0]:.3f}" if key in results[c]["accuracy"] else "-" for c in columns]
        print(f"| {key} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=CACHE / "runs" / "vqa-6000")
    parser.add_argument("--skip-curves", action="store_true", help="no sample-efficiency or unanswerable retraining")
    args = parser.parse_args()
    import torch

    from sensorium.training.world_reading import VQATraining, train_parser, train_vqa, world_questions
    from sensorium.world.parser import QuestionParser
    from sensorium.world.vqa import WorldVQA

    torch.set_num_threads(2)
    folders = {"A-train": world("A-train", 6000, "A", 1), "A-test": world("A-test", 600, "A", 2),
               "B-fresh": world("B-fresh", 600, "B", 4)}
    if not (args.run / "vqa" / "vqa.json").is_file():
        began = time.perf_counter()
        train_vqa(folders["A-train"], args.run, VQATraining(), resume=(args.run / "runs").exists())
        print(f"trained in {(time.perf_counter() - began) / 60:.1f} min (wall, reading included)", flush=True)
    print("epoch minutes per part:", {k: round(v, 1) for k, v in part_minutes(args.run).items()}, flush=True)
    vqa = WorldVQA.load(args.run)
    for name in ("A-test", "B-fresh"):
        recall, precision = detection_rates(vqa, folders[name])
        print(f"{name}: objects found {recall:.3f}, detections that are objects {precision:.3f}", flush=True)
    results = {name: score(vqa, folders[name]) for name in ("A-test", "B-fresh")}
    print()
    table(results, ["A-test", "B-fresh"])
    for name, result in results.items():
        g = result["grounding"]
        cover = ", ".join(f"{int(k * 100)}% {v:.3f}" for k, v in result["answerable_accuracy_at_coverage"].items())
        print(f"{name}: 'cannot tell' precision {result['cannot_tell_precision']:.3f}, recall "
              f"{result['cannot_tell_recall']:.3f}; answerable accuracy at coverage {cover}; "
              f"ECE of the answers' confidence {result['answer_ece']:.3f}; grounding: about one "
              f"object {g['about one object'][0]:.3f} ({g['about one object'][1]}), every question with objects "
              f"{g['all with objects'][0]:.3f} ({g['all with objects'][1]})", flush=True)
    print("answers/s on one core:", {k: round(v, 1) for k, v in speed(vqa, folders["A-test"]).items()}, flush=True)
    (args.run / "world_answers.json").write_text(json.dumps(results, indent=1, default=str))
    if args.skip_curves:
        return

    # the parser alone retrained; detector and object reader fixed
    curves: dict[str, dict] = {}
    settings = VQATraining(progress=False)
    questions, programs = world_questions(folders["A-train"], unanswerable=False)
    began = time.perf_counter()
    parser_run = args.run / "variants" / "no-unanswerable"
    no_unanswerable = (QuestionParser.load(parser_run) if (parser_run / "parser.json").is_file() else
                       train_parser(questions, programs, parser_run / "run", settings))
    no_unanswerable.save(parser_run)
    print(f"parser without unanswerable questions ({len(questions)}): {time.perf_counter() - began:.0f} s", flush=True)
    curves["trained without unanswerable questions"] = {n: score(vqa, folders[n], no_unanswerable)
                                                        for n in ("A-test", "B-fresh")}
    big = world("A-questions", 10000, "A", 11)
    for count in (1000, 10000, 100000):
        variant = args.run / "variants" / f"questions-{count}"
        if (variant / "parser.json").is_file():
            parser_model = QuestionParser.load(variant)
        else:
            questions, programs = world_questions(big, count)
            epochs = max(3, math.ceil(120000 / count))  # at least ~940 steps of 128 for every size
            began = time.perf_counter()
            parser_model = train_parser(questions, programs, variant / "run",
                                        VQATraining(parser_epochs=epochs, progress=False))
            parser_model.save(variant)
            print(f"parser on {count} questions, {epochs} epochs: {time.perf_counter() - began:.0f} s", flush=True)
        curves[f"{count} questions"] = {n: score(vqa, folders[n], parser_model) for n in ("A-test", "B-fresh")}
    print()
    for name, result in curves.items():
        a, b = result["A-test"], result["B-fresh"]
        print(f"| {name} | {a['accuracy']['all'][0]:.3f} | {a['accuracy']['answerable'][0]:.3f} | "
              f"{a['cannot_tell_recall']:.3f} | {b['accuracy']['all'][0]:.3f} | {b['accuracy']['answerable'][0]:.3f} | "
              f"{b['cannot_tell_recall']:.3f} |")
    (args.run / "world_answers_curves.json").write_text(json.dumps(curves, indent=1, default=str))


if __name__ == "__main__":
    main()
