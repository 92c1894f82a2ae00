"""`sensorium world make`: write a procedural world dataset (pictures + exact annotations) to a folder.

Registered on the `sensorium` app by `sensorium.cli` as the `world` group.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from .console import EXIT_USAGE, fail, failing_cleanly, make_console, progress_bar

world_app = typer.Typer(no_args_is_help=True, help="A procedural world of objects with exact ground truth: "
                        "pictures, captions and question/answer pairs for training and measuring models.")


@world_app.command("make")
def make(
    out: Path = typer.Argument(..., help="Folder to write (new, empty, or an earlier world with the same parameters "
                                         "to resume or extend)."),
    scenes: int = typer.Option(1000, "--scenes", "-n", help="How many scenes the folder should hold."),
    split: str = typer.Option("all", "--split", help="A or B: CLEVR-CoGenT colour rules for cubes and cylinders "
                                                      "(train on A, test on B); all: no rule."),
    seed: int = typer.Option(0, "--seed", help="Scenes are a function of (seed, scene number)."),
    size: int = typer.Option(128, "--size", help="Picture width and height in pixels (96-128 suits the models)."),
    min_objects: int = typer.Option(3, "--min-objects"),
    max_objects: int = typer.Option(10, "--max-objects"),
    questions: int = typer.Option(10, "--questions", help="Questions per scene."),
    captions: int = typer.Option(5, "--captions", help="Captions per scene."),
    antialias: int = typer.Option(1, "--antialias", help="1: smooth outlines only (fast); k > 1: render k x larger "
                                                         "and average (k^2 slower)."),
    workers: int = typer.Option(0, "--workers", help="Processes drawing scenes; 0 = one per core."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Draw SCENES scenes into OUT: images/, scenes.jsonl, questions.jsonl and captions.jsonl (training manifests)."""
    from ..world import Condition, SceneOptions, WorldSpec, make_world

    conditions = {c.value.lower(): c for c in Condition}
    if split.lower() not in conditions:
        fail(f"--split: {split!r} is not one of A, B, all", EXIT_USAGE)
    try:
        options = SceneOptions(size=size, min_objects=min_objects, max_objects=max_objects,
                               condition=conditions[split.lower()], antialias=antialias)
    except ValueError as error:
        fail(f"--{error}", EXIT_USAGE)
    if questions < 0 or captions < 0:
        fail("--questions and --captions: must be 0 or more", EXIT_USAGE)
    spec = WorldSpec(seed=seed, options=options, questions_per_scene=questions, captions_per_scene=captions)
    update = None if json_out else progress_bar("drawing scenes")
    with failing_cleanly():
        summary = make_world(out, scenes, spec, workers=workers or None,
                             progress=(lambda done, total: update(done, total)) if update else None)
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    console = make_console()
    console.print(f"{summary['scenes']} scenes ({summary['objects']} objects), {summary['questions']} questions, "
                  f"{summary['captions']} captions in {out}", markup=False)
    families = ", ".join(f"{name} {count}" for name, count in summary["families"].items())
    console.print(f"question families: {families}", markup=False)
    console.print(f"train on it: a config with [data] train = \"{out / 'questions.jsonl'}\" "
                  "(see examples/world_vqa.toml)", markup=False)
