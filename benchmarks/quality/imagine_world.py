"""Text -> image on the procedural world: are the asked colours, shapes and relations in the picture?

    .venv/bin/python -m benchmarks.quality.imagine_world --model RUN [--per 10] [--pairs 160] [--quick]

The judge (`benchmarks.common.world_judge`, a CNN trained on real scenes of every colour condition,
never shown to the generator) reads which (colour, shape) objects a picture holds, and where.

- **Objects**: "a red cube" for each of the world's 40 colour-shape combinations: the share of
  pictures in which the judge finds the asked combination. Seen combinations (the model's training
  condition allows them) against held-out ones (it never saw them, e.g. a red cube under condition A).
- **Relations**: "a red sphere to the left of a blue cone" (left, right, in front of, behind):
  both objects found, and the relation as the judge reads it; held-out when either object is.
- The judge on real scenes, for the ceiling: the same two figures on rendered scenes.
- Speed: pictures/s at 10 and 50 steps on one core (batches of 16, guidance on; a layout-reading
  model's planning included).

A model trained with `layout = true` (examples/imagine_world_layout.toml) is drawn to the layout its
Imaginer plans from each prompt (`sensorium.world.layout`); the judge never sees the plan.
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common.world_judge import INDEX, cached_world_judge, read, real_scenes, relation_right
from sensorium.training.imagining_world import combinations, held_out_combinations
from sensorium.world.language import RELATION_WORDS
from sensorium.world.relations import Relation, relation_holds

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".benchmarks-cache" / "imagine"


def draw(imaginer, texts: list[str], per: int, steps: int, guidance: float, seed: int, plan: bool = True) -> np.ndarray:
    """`per` pictures of each text, in order (batches of up to 32); PLAN False draws a layout-reading model
    without its plans (the ablation: words alone)."""
    from rich.progress import Progress

    from sensorium.generation.imagine import sample, to_pixels

    embeddings = imaginer.embed(texts).repeat_interleave(per, 0)
    layouts, _ = imaginer.plan([text for text in texts for _ in range(per)], seed)  # None: the model reads no layout
    layouts = layouts if plan else None
    pictures = []
    with Progress(transient=True) as bar:
        task = bar.add_task(f"drawing {len(embeddings)} scenes, {steps} steps", total=len(embeddings))
        for start in range(0, len(embeddings), 32):
            chunk = embeddings[start:start + 32]
            plans = None if layouts is None else layouts[start:start + 32]
            x = sample(imaginer.model, chunk.contiguous(), steps, guidance, torch.Generator().manual_seed(seed + start),
                       plans)
            pictures.append(to_pixels(x, imaginer.config.image_size))
            bar.advance(task, len(chunk))
    return np.concatenate(pictures)


def phrase(combo: tuple[str, str]) -> str:
    return f"a {combo[0]} {combo[1]}"


def pair_prompts(count: int, held_out: list[tuple[str, str]], seed: int) -> list[dict]:
    """COUNT relation prompts, half of them with a held-out subject, the other half all seen."""
    rng = random.Random(seed)
    seen = [c for c in combinations() if c not in held_out]
    pairs = []
    for number in range(count):
        subject = rng.choice(held_out if number % 2 and held_out else seen)
        anchor = rng.choice([c for c in seen if c[1] != subject[1]])
        relation = rng.choice(list(Relation))
        pairs.append({"subject": subject, "anchor": anchor, "relation": relation,
                      "held_out": subject in held_out,
                      "text": f"{phrase(subject)} {RELATION_WORDS[relation]} {phrase(anchor)}"})
    return pairs


def judge_on_real(judge, size: int) -> tuple[float, float, float]:
    """(asked object found, other objects wrongly found, relation right when both found) on 2,000 real scenes."""
    images, objects, scenes = real_scenes(2000, size, seed=77)
    reading = read(judge, images)
    there = np.zeros_like(reading.present, dtype=bool)
    for row, held in enumerate(objects):
        there[row, [k for k, *_ in held]] = True
    found = float(np.mean(reading.present[there] > reading.threshold))
    false = float(np.mean(reading.present[~there] > reading.threshold))
    rights = []
    for row, scene in enumerate(scenes):
        if len(scene.objects) < 2:
            continue
        a, b = scene.objects
        if (a.colour, a.shape) == (b.colour, b.shape):
            continue
        for relation in Relation:
            holds = relation_holds(a, b, relation, scene.size)
            if holds:
                rights.append(relation_right(reading, row, (a.colour, a.shape), relation, (b.colour, b.shape)))
    return found, false, float(np.mean(rights))


def speed(imaginer, steps: int, count: int = 16) -> float:
    from sensorium.generation.imagine import sample

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        text = "a red sphere to the left of a blue cone"
        embedding = imaginer.embed([text])[0]
        embedding = embedding.expand(count, *embedding.shape).contiguous()
        sample(imaginer.model, embedding, 2, 3.0, layouts=imaginer.plan([text] * count, 0)[0])
        began = time.perf_counter()
        layouts, _ = imaginer.plan([text] * count, 1)  # planning is timed too
        sample(imaginer.model, embedding, steps, 3.0, torch.Generator().manual_seed(0), layouts)
        return count / (time.perf_counter() - began)
    finally:
        torch.set_num_threads(threads)


def save_grid(imaginer, texts: list[str], path: Path, steps: int, seed: int, per: int = 8) -> None:
    from PIL import Image

    from sensorium.diffusion import tile

    pictures = draw(imaginer, texts, per, steps, 3.0, seed)
    Image.fromarray(tile(pictures, per)).save(path)


def main(argv: list[str] | None = None) -> int:
    from sensorium.generation.imagine import load_imaginer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a run folder of a world text-to-image config")
    parser.add_argument("--per", type=int, default=10, help="pictures per single-object prompt")
    parser.add_argument("--pairs", type=int, default=160, help="relation prompts (two pictures each)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 per object prompt, 40 relation prompts")
    parser.add_argument("--no-plan", action="store_true", help="a layout-reading model drawn without its plans")
    parser.add_argument("--grid", type=Path, default=ROOT / "docs" / "experiments" / "imagine-world-samples.png")
    args = parser.parse_args(argv)
    if args.quick:
        args.per, args.pairs = 3, 40
    torch.set_num_threads(2)
    imaginer = load_imaginer(args.model)
    size = imaginer.config.image_size
    condition = imaginer.config.trained.get("condition", "A")
    held_out = held_out_combinations(condition) if condition != "all" else []
    plan = not args.no_plan
    judge = cached_world_judge(CACHE, size)
    found, false, right = judge_on_real(judge, size)
    print(f"judge on 2,000 real scenes: asked object found {found:.4f}, absent ones wrongly found {false:.4f}, "
          f"relation right {right:.4f} (presence threshold {float(judge.threshold):.2f}, chosen on other real scenes)")
    print(f"model {imaginer.model_id} (trained under condition {condition}; held out: "
          f"{', '.join(phrase(c) for c in held_out)}); {args.steps} steps, w = {args.guidance:g}"
          + ("; drawn to planned layouts" if imaginer.config.layout and plan else ""))

    combos = combinations()
    pictures = draw(imaginer, [phrase(c) for c in combos], args.per, args.steps, args.guidance, args.seed, plan)
    reading = read(judge, pictures)
    hits = np.array([reading.found(row, INDEX[combos[row // args.per]]) for row in range(len(pictures))])
    per_combo = hits.reshape(len(combos), args.per).mean(1)
    unseen = np.array([c in held_out for c in combos])
    colour_hits = np.array([any(reading.found(row, INDEX[(combos[row // args.per][0], s)]) for s in
                                {c[1] for c in combos}) for row in range(len(pictures))])
    print(f"\n| objects ({args.per} pictures each) | asked colour and shape found | asked colour found (any shape) |\n|---|---|---|")
    for label, mask in (("seen combinations", ~unseen), ("held-out combinations", unseen)):
        if mask.any():
            rows = np.repeat(mask, args.per)
            print(f"| {label} ({mask.sum()}) | {per_combo[mask].mean():.3f} | {colour_hits[rows].mean():.3f} |")
    worst = np.argsort(per_combo)[:5]
    print("worst: " + ", ".join(f"{phrase(combos[i])} {per_combo[i]:.2f}" for i in worst))

    pairs = pair_prompts(args.pairs, held_out, args.seed)
    pictures_2 = draw(imaginer, [p["text"] for p in pairs], 2, args.steps, args.guidance, args.seed + 1, plan)
    reading_2 = read(judge, pictures_2)
    both, right_given, held = [], [], []
    for row in range(len(pictures_2)):
        p = pairs[row // 2]
        there = reading_2.found(row, INDEX[p["subject"]]) and reading_2.found(row, INDEX[p["anchor"]])
        both.append(there)
        right_given.append(relation_right(reading_2, row, p["subject"], p["relation"], p["anchor"]) if there else None)
        held.append(p["held_out"])
    both, held = np.array(both), np.array(held)
    print("\n| relations (2 pictures each) | both objects found | relation right (both found) | both found and right |\n|---|---|---|---|")
    for label, mask in (("seen subjects", ~held), ("held-out subjects", held)):
        if mask.any():
            rights = [r for r, m in zip(right_given, mask) if m and r is not None]
            overall = np.mean([bool(r) for r, m in zip(right_given, mask) if m])
            print(f"| {label} ({mask.sum()} pictures) | {both[mask].mean():.3f} | "
                  f"{np.mean(rights) if rights else float('nan'):.3f} | {overall:.3f} |")
    by_relation = {r: [x for x, p in zip(right_given, np.repeat(pairs, 2)) if p["relation"] == r and x is not None]
                   for r in Relation}
    print("relation right by kind: " + ", ".join(f"{r.value} {np.mean(v):.2f} ({len(v)})" for r, v in by_relation.items() if v))

    print(f"\nspeed, one core, batches of 16, guidance on: {speed(imaginer, 10):.2f} pictures/s at 10 steps, "
          f"{speed(imaginer, 50):.2f} at 50")
    if args.grid and not args.no_plan:
        texts = [phrase(c) for c in [("red", "sphere"), ("blue", "cube"), ("yellow", "cone"), ("green", "torus")]]
        texts += [phrase(c) for c in held_out[:2]] + [p["text"] for p in pairs[:2]]
        save_grid(imaginer, texts, args.grid, args.steps, args.seed)
        print(f"grid: {args.grid}  rows: " + " | ".join(texts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
