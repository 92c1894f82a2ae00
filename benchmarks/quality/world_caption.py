"""The world captioner: hallucination (CHAIR, exact), the captioning metrics, and speed on one core.

    .venv/bin/python -m benchmarks.quality.world_caption [--epochs 12] [--run DIR] [--beams 1 3] [--dev]

Trains `sensorium world train --model captioner` on condition A (6,000 scenes, seed 1) into the
run folder of `benchmarks.quality.world_answers` (so the detector and object reader trained there
are reused, as the command does) unless --run names another, then captions A-test (seed 2) and
B-fresh (condition B, seed 4), 600 scenes each. Choices were made on A-dev (seed 5) and B-dev
(condition B, seed 6), 200 scenes each (`--dev`).

- CHAIR_i / CHAIR_s (Rohrbach et al. 2018) exactly from the scene annotations (`world.chair`),
  at object level (a shape not in the scene) and attribute level (no object with that shape and
  every adjective said of it), with object recall;
- BLEU-4, METEOR, ROUGE-L, CIDEr against the scene's 5 grammar captions (pycocoevalcap's scorers;
  METEOR needs Java and is skipped with a message without it; SPICE is out: it downloads CoreNLP);
- captions/s on one core, one picture at a time and in batches of 32.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".benchmarks-cache" / "world"
WORLDS = {"A-train": ("A", 1), "A-dev": ("A", 5), "B-dev": ("B", 6), "A-test": ("A", 2), "B-fresh": ("B", 4)}
DEV = ("A-dev", "B-dev")


def make_worlds(scenes: int, test_scenes: int, dev_scenes: int) -> dict[str, Path]:
    from sensorium.world import Condition, SceneOptions, WorldSpec, make_world

    folders = {}
    for name, (condition, seed) in WORLDS.items():
        count = scenes if name == "A-train" else dev_scenes if name in DEV else test_scenes
        folder = CACHE / f"{name}-seed{seed}"
        make_world(folder, count, WorldSpec(seed=seed, options=SceneOptions(condition=Condition(condition))))
        folders[name] = folder
    return folders


def language_scores(candidates: list[str], references: list[list[str]]) -> dict[str, float]:
    """BLEU-4, ROUGE-L, CIDEr and (with Java) METEOR of one candidate per scene against its references."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    res = {i: [c] for i, c in enumerate(candidates)}
    gts = {i: refs for i, refs in enumerate(references)}
    scores = {"BLEU-4": Bleu(4).compute_score(gts, res, verbose=0)[0][3],
              "ROUGE-L": Rouge().compute_score(gts, res)[0], "CIDEr": Cider().compute_score(gts, res)[0]}
    if shutil.which("java"):
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()
        try:
            scores["METEOR"] = meteor.compute_score(gts, res)[0]
        finally:
            meteor.close() if hasattr(meteor, "close") else None
    else:
        print("METEOR skipped: no `java` on this machine (Debian: apt install default-jre-headless)")
        scores["METEOR"] = float("nan")
    return scores


def caption_all(model, pictures: np.ndarray, batch: int = 64, **decoding) -> list[str]:
    out: list[str] = []
    for start in range(0, len(pictures), batch):
        out.extend(model.caption(list(pictures[start:start + batch]), **decoding))
    return out


def evaluate(model, world: tuple, decoding: dict) -> dict:
    """world: (pictures, references, scenes) of one folder, read once for every decoding."""
    from sensorium.world.chair import chair

    pictures, references, scenes = world
    began = time.perf_counter()
    candidates = caption_all(model, pictures, **decoding)
    seconds = time.perf_counter() - began
    hallucination = chair(zip(candidates, scenes))
    words = np.mean([len(c.split()) for c in candidates])
    return {"chair": hallucination, "language": language_scores(candidates, references), "words": words,
            "captions_per_s": len(candidates) / seconds, "examples": list(zip(candidates[:4], references[:4])),
            "distinct": len(set(candidates)) / len(candidates)}


def speed(model, pictures: np.ndarray, decoding: dict) -> list[str]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        model.caption(list(pictures[:2]), **decoding)  # warm-up
        for batch in (1, 32):
            count = 32
            began = time.perf_counter()
            caption_all(model, pictures[:count], batch=batch, **decoding)
            rows.append(f"| {decoding.get('beam', 1)} | {batch} | {count / (time.perf_counter() - began):.1f} |")
    finally:
        torch.set_num_threads(before)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=6000)
    parser.add_argument("--test-scenes", type=int, default=600)
    parser.add_argument("--dev-scenes", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=12, help="the word decoder's")
    parser.add_argument("--run", type=Path, default=CACHE / "runs" / "vqa-6000",
                        help="run folder: its captioner/ is used, or trained (taking the detector and object reader "
                             "from its vqa/ when there)")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--no-repeat", type=int, default=3, help="no_repeat_ngram of the decoding")
    parser.add_argument("--dev", action="store_true", help="score on A-dev and B-dev only (choosing settings)")
    args = parser.parse_args(argv)

    from sensorium.training.captioning import MODEL_DIR, CaptionTraining, train_world_captioner
    from sensorium.world.captioner import WorldCaptioner

    folders = make_worlds(args.scenes, args.test_scenes, args.dev_scenes)
    run = args.run
    if not (run / MODEL_DIR).is_dir():
        began = time.perf_counter()
        train_world_captioner(folders["A-train"], run, CaptionTraining(epochs=args.epochs))
        print(f"trained in {(time.perf_counter() - began) / 60:.1f} min (the detector and object reader: "
              f"{'reused from ' + str(run / 'vqa') if (run / 'vqa').is_dir() else 'included'})", flush=True)
    model = WorldCaptioner.load(run)
    trained = model.words.config.trained
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    print(f"captioner: word decoder {count(model.words) / 1e6:.2f} M parameters ({len(model.words.config.vocabulary)} "
          f"words), detector {count(model.detector) / 1e6:.2f} M, object reader {count(model.perception) / 1e6:.2f} M; "
          f"trained on {trained.get('scenes')} scenes of condition {trained.get('condition')}, the decoder for "
          f"{trained.get('epochs')} epochs")
    tests = list(DEV) if args.dev else ["A-test", "B-fresh"]
    print("\n| world | decoding | CHAIR_i | CHAIR_s | attribute CHAIR_i | attribute CHAIR_s | recall | BLEU-4 | METEOR "
          "| ROUGE-L | CIDEr | words | distinct |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    from sensorium.training.captioning import read_pictures_and_captions
    from sensorium.world.scene import Scene

    examples = {}
    for name in tests:
        pictures, references, records = read_pictures_and_captions(folders[name])
        world = (pictures, references, [Scene.from_json(r) for r in records])
        for beam in args.beams:
            decoding = {"beam": beam, "no_repeat_ngram": args.no_repeat}
            result = evaluate(model, world, decoding)
            c, lang = result["chair"], result["language"]
            print(f"| {name} | {'greedy' if beam == 1 else f'beam {beam}'} | {c.chair_i:.4f} | {c.chair_s:.4f} "
                  f"| {c.attribute_chair_i:.4f} | {c.attribute_chair_s:.4f} | {c.recall:.3f} | {lang['BLEU-4']:.3f} "
                  f"| {lang['METEOR']:.3f} | {lang['ROUGE-L']:.3f} | {lang['CIDEr']:.3f} | {result['words']:.1f} "
                  f"| {result['distinct']:.2f} |", flush=True)
            examples[(name, beam)] = result["examples"]
    pictures = read_pictures_and_captions(folders[tests[0]], 64)[0]
    print("\n| beam | pictures per call | captions/s, one core |\n|---|---|---|")
    for beam in args.beams:
        print("\n".join(speed(model, pictures, {"beam": beam, "no_repeat_ngram": args.no_repeat})), flush=True)
    print("\nexamples (model | first reference)")
    for (name, beam), pairs in examples.items():
        for candidate, references in pairs[:2]:
            print(f"- {name}, beam {beam}: {candidate} | {references[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
