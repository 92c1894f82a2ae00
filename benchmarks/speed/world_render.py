"""How fast the procedural world draws scenes, on one core and on all, and what the questions it asks look like.

    .venv/bin/python -m benchmarks.speed.world_render [--scenes 400]

One core: `generate_scene` alone (placement, ray casting, shading: the issue's "rendered" figure),
then the whole record `sensorium world make` writes per scene (plus captions, questions, PNG
encoding), at 96 and 128 px, with outline smoothing (antialias 1, the default) and with 2 x 2
supersampling. All cores: `make_world` into a temporary folder with one worker per core, files
included. Then the dataset's make-up: objects per scene, questions per family, and each family's
majority-answer share (what a model that ignores the picture can reach: the floor for VQA).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path


def _rate(work, count: int) -> float:
    began = time.perf_counter()
    for index in range(count):
        work(index)
    return count / (time.perf_counter() - began)


def contact_sheet(path: Path, seed: int, per_row: int = 4) -> None:
    """Scenes of condition A (top) and B (bottom) at 2x, each object's box, and one caption and
    one question with its answer under each picture."""
    from PIL import Image, ImageDraw

    from sensorium.world import Condition, SceneOptions, captions, generate_scene, questions
    from sensorium.world.language import language_rng

    scale, size, text_height = 2, 128, 44
    sheet = Image.new("RGB", (per_row * size * scale, 2 * (size * scale + text_height)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, condition in enumerate((Condition.A, Condition.B)):
        for column in range(per_row):
            scene, pixels = generate_scene(seed, column, SceneOptions(condition=condition))
            picture = Image.fromarray(pixels).resize((size * scale, size * scale), Image.NEAREST)
            left, top = column * size * scale, row * (size * scale + text_height)
            sheet.paste(picture, (left, top))
            for obj in scene.objects:
                x0, y0, x1, y1 = (v * scale for v in obj.box)
                draw.rectangle((left + x0, top + y0, left + x1, top + y1), outline=(255, 255, 255))
            rng = language_rng(seed, column)
            caption = captions(scene, 1, rng)[0].text
            question = questions(scene, 1, rng)[0]
            draw.text((left + 4, top + size * scale + 2), f"{condition.value}: {caption}"[:52], fill="black")
            draw.text((left + 4, top + size * scale + 16), question.text[:52], fill="black")
            draw.text((left + 4, top + size * scale + 30), f"-> {question.answer}", fill=(0, 90, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"contact sheet: {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--figure", type=Path, help="also draw a contact sheet of scenes (A above B) to this PNG")
    args = parser.parse_args()
    if args.figure:
        contact_sheet(args.figure, args.seed)
    from sensorium.world import SceneOptions, WorldSpec, generate_scene, make_world, read_scenes
    from sensorium.world.writer import scene_record

    generate_scene(0, 0)  # warm the ray tables
    print(f"| one core, {args.scenes} scenes, 3-10 objects | scenes/s: drawn | scenes/s: drawn + captions, "
          "questions, PNG |")
    print("|---|---:|---:|")
    for size in (96, 128):
        for antialias in (1, 2):
            options = SceneOptions(size=size, antialias=antialias)
            spec = WorldSpec(seed=args.seed, options=options)
            drawn = _rate(lambda i: generate_scene(args.seed, i, options), args.scenes)
            whole = _rate(lambda i: scene_record(spec, i), args.scenes)
            label = "outline smoothing" if antialias == 1 else "2 x 2 supersampling"
            print(f"| {size} px, {label} | {drawn:.0f} | {whole:.0f} |")

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="world-render-") as temp:
        count = args.scenes * 5
        began = time.perf_counter()
        summary = make_world(Path(temp) / "w", count, WorldSpec(seed=args.seed), workers=cores)
        seconds = time.perf_counter() - began
        print(f"\n`make_world`, {count} scenes at 128 px, {cores} worker processes, files written: "
              f"{count / seconds:.0f} scenes/s ({seconds:.1f} s)")
        objects = Counter(len(record["objects"]) for record in read_scenes(Path(temp) / "w"))
        answers: dict[str, Counter] = {}
        for record in read_scenes(Path(temp) / "w"):
            for question in record["questions"]:
                answers.setdefault(question["family"], Counter())[question["answer"]] += 1
    print(f"objects per scene: mean {summary['objects'] / summary['scenes']:.2f}, "
          + ", ".join(f"{k}: {objects[k]}" for k in sorted(objects)))
    print("\n| family | questions | share | distinct answers | majority answer | majority share |")
    print("|---|---:|---:|---:|---|---:|")
    total = summary["questions"]
    for family, counter in sorted(answers.items()):
        n = sum(counter.values())
        answer, top = counter.most_common(1)[0]
        print(f"| {family} | {n} | {n / total:.3f} | {len(counter)} | {answer} | {top / n:.3f} |")
    overall = Counter()
    for counter in answers.values():
        overall.update(counter)
    best_by_family = sum(c.most_common(1)[0][1] for c in answers.values()) / total
    print(f"\nmajority answer overall: {overall.most_common(1)[0][0]!r} {overall.most_common(1)[0][1] / total:.3f}; "
          f"knowing the family and answering its majority: {best_by_family:.3f}")


if __name__ == "__main__":
    main()
