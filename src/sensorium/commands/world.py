"""`sensorium world make | train | caption`: a procedural world dataset (pictures + exact annotations),
a captioner trained on it, and captions from that captioner.

Registered on the `sensorium` app by `sensorium.cli` as the `world` group.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import SensoriumError
from .console import EXIT_ERROR, EXIT_USAGE, fail, failing_cleanly, make_console, progress_bar

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


@world_app.command("train")
def train(
    world: Path = typer.Argument(..., help="A folder from `sensorium world make` (train on condition A)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: the model goes to OUT/captioner, checkpoints "
                                                       "to OUT/checkpoint, the loss per epoch to OUT/metrics.jsonl."),
    model: str = typer.Option("captioner", "--model", help="What to train: captioner (the question answerer "
                                                           "still lives in benchmarks/quality/world_detect.py)."),
    epochs: int = typer.Option(20, "--epochs", min=1),
    scenes: int = typer.Option(0, "--scenes", min=0, help="Use only the first N scenes (0 = all)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Pictures per step."),
    lr: float = typer.Option(2e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(0, "--threads", help="Torch threads; 0 = every core, -1 = the cores idle now."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT exactly where it stopped."),
):
    """Train a world model with the learning framework's Trainer (about 45 min for 6,000 scenes and 20 epochs
    on 2 cores); weights as safetensors + JSON."""
    if model != "captioner":
        fail(f"--model: {model!r} is not one of: captioner", EXIT_USAGE)
    from ..training.captioning import MODEL_DIR, CaptionTraining, train_captioner

    settings = CaptionTraining(epochs=epochs, scenes=scenes, batch_size=batch_size, lr=lr, seed=seed, threads=threads)
    with failing_cleanly():
        train_captioner(world, out, settings, resume=resume)
    make_console().print(f"captioner in {out / MODEL_DIR}; caption with `sensorium world caption "
                         f"{out / MODEL_DIR} PICTURE`", markup=False)


@world_app.command("caption")
def caption(
    model: Path = typer.Argument(..., help="A captioner folder (`sensorium world train` writes RUN/captioner)."),
    pictures: list[Path] = typer.Argument(..., help="World pictures (PNG/JPEG; resized to the model's size)."),
    beam: int = typer.Option(3, "--beam", min=1, max=16, help="Beam width; 1 = greedy."),
    max_words: Optional[int] = typer.Option(None, "--max-words", min=2, help="Longest caption in words."),
    min_words: int = typer.Option(1, "--min-words", min=1, help="Shortest caption in words."),
    no_repeat: int = typer.Option(3, "--no-repeat", min=0, help="Never repeat an n-gram of this length (0 = off)."),
    length_penalty: float = typer.Option(0.0, "--length-penalty", min=0.0, help="GNMT alpha: > 0 favours longer "
                                                                                "captions in beam search."),
    json_out: bool = typer.Option(False, "--json", help="Print the captions as JSON."),
):
    """Caption world pictures with a trained captioner. Exit status 1 when any picture could not be read."""
    from ..readers.image import read_image
    from ..world.captioner import Captioner

    with failing_cleanly():
        captioner = Captioner.load(model)
    readable, failures = [], []
    for path in pictures:
        try:
            readable.append((path, read_image(path).pixels))
        except SensoriumError as error:
            failures.append((str(path), str(error)))
    texts = captioner.caption([pixels for _, pixels in readable], beam=beam, max_words=max_words, min_words=min_words,
                              no_repeat_ngram=no_repeat, length_penalty=length_penalty) if readable else []
    results = [{"path": str(path), "caption": text} for (path, _), text in zip(readable, texts)]
    if json_out:
        print(json.dumps({"results": results, "failures": [{"path": p, "reason": r} for p, r in failures]}, indent=2))
    else:
        console = make_console()
        for result in results:
            console.print(result["caption"] if len(pictures) == 1 else f"{result['path']}: {result['caption']}",
                          markup=False)
        for _, reason in failures:
            make_console(stderr=True).print(f"failed: {reason}", style="red", markup=False)
    if failures:
        raise typer.Exit(EXIT_ERROR)
