"""`sensorium world make | train | caption | ask`: a procedural world dataset (pictures + exact annotations),
a captioner and a question answerer trained on it, and their captions and answers.

Registered on the `sensorium` app by `sensorium.cli` as the `world` group.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import SensoriumError
from .console import EXIT_ERROR, EXIT_USAGE, fail, failing_cleanly, make_console, progress_bar

CAPTIONER, VQA = "captioner", "vqa"
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
    console.print(f"train on it: `sensorium world train {out} --model vqa --out RUN` (or --model captioner), or "
                  f"a config with [data] train = \"{out / 'questions.jsonl'}\" (examples/world_vqa.toml)", markup=False)


@world_app.command("train")
def train(
    world: Path = typer.Argument(..., help="A folder from `sensorium world make` (train on condition A)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: the model goes to OUT/captioner or OUT/vqa, "
                                                       "checkpoints and the loss per epoch under OUT."),
    model: str = typer.Option(CAPTIONER, "--model", help=f"What to train: {CAPTIONER} (pictures -> captions) or "
                                                         f"{VQA} (detector, object reader and question parser)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Captioner: the word decoder's epochs "
                                                                       "(default 12); vqa: the detector's (default 6)."),
    scenes: int = typer.Option(0, "--scenes", min=0, help="Use only the first N scenes (0 = all)."),
    questions: int = typer.Option(0, "--questions", min=0, help="vqa: train the parser on the first N questions "
                                                                "(0 = all)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Captioner: pictures per step."),
    lr: float = typer.Option(2e-3, "--lr", help="Captioner learning rate."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(0, "--threads", help="Torch threads; 0 = every core, -1 = the cores idle now."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT exactly where it stopped."),
):
    """Train a world model with the learning framework's Trainer; weights as safetensors + JSON.
    Both read pictures with a detector and an object reader: on 2 cores with 6,000 scenes those take
    about 40 min, once (the captioner takes them from OUT/vqa when vqa was trained into the same OUT);
    the captioner's word decoder about 12 min more, the question parser about 3."""
    if model not in (CAPTIONER, VQA):
        fail(f"--model: {model!r} is not one of: {CAPTIONER}, {VQA}", EXIT_USAGE)
    console = make_console()
    if model == VQA:
        from ..training.world_reading import MODEL_DIR, VQATraining, train_vqa

        settings = VQATraining(detector_epochs=epochs or VQATraining.detector_epochs, scenes=scenes,
                               questions=questions, seed=seed, threads=threads)
        with failing_cleanly():
            train_vqa(world, out, settings, resume=resume)
        console.print(f"question answerer in {out / MODEL_DIR}; ask with `sensorium world ask {out / MODEL_DIR} "
                      "PICTURE \"QUESTION\"`", markup=False)
        return
    from ..training.captioning import MODEL_DIR, CaptionTraining, train_world_captioner

    settings = CaptionTraining(epochs=epochs or CaptionTraining.epochs, scenes=scenes, batch_size=batch_size, lr=lr,
                               seed=seed, threads=threads)
    with failing_cleanly():
        train_world_captioner(world, out, settings, resume=resume)
    console.print(f"captioner in {out / MODEL_DIR}; caption with `sensorium world caption {out} PICTURE`", markup=False)


@world_app.command("ask")
def ask(
    model: Path = typer.Argument(..., help="A question answerer (`sensorium world train --model vqa` writes RUN/vqa)."),
    picture: Path = typer.Argument(..., help="A world picture (PNG/JPEG)."),
    questions: list[str] = typer.Argument(..., help="One or more questions about it, in English."),
    json_out: bool = typer.Option(False, "--json", help="Print answers, programs and the objects looked at as JSON."),
):
    """Answer questions about a world picture, each with the objects it looked at (their boxes).
    "cannot tell" when what a question names is not in the picture or is not in the model's words."""
    from ..readers.image import read_image
    from ..world.vqa import WorldVQA

    if not all(q.strip() for q in questions):
        fail("question: empty", EXIT_USAGE)
    with failing_cleanly():
        vqa = WorldVQA.load(model)
        pixels = read_image(picture).pixels
    try:
        [answers] = vqa.ask_many([pixels], [questions])
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    if json_out:
        print(json.dumps({"picture": str(picture), "answers": [a.to_json() for a in answers]}, indent=2))
        return
    console = make_console()
    for answer in answers:
        looked = "; ".join(f"{o.size} {o.colour} {o.material} {o.shape} at "
                           f"({o.box[0]:.0f}, {o.box[1]:.0f}, {o.box[2]:.0f}, {o.box[3]:.0f})" for o in answer.objects)
        line = answer.answer + (f" ({answer.reason})" if answer.reason else "") + (f" [looked at: {looked}]"
                                                                                  if looked else "")
        console.print(line if len(answers) == 1 else f"{answer.question} -> {line}", markup=False)


@world_app.command("caption")
def caption(
    model: Path = typer.Argument(..., help="A captioner: the run folder of `sensorium world train --model captioner` "
                                           "or its captioner/ folder."),
    pictures: list[Path] = typer.Argument(..., help="World pictures (PNG/JPEG; resized to the model's size)."),
    beam: int = typer.Option(3, "--beam", min=1, max=16, help="Beam width; 1 = greedy."),
    max_words: Optional[int] = typer.Option(None, "--max-words", min=2, help="Longest caption in words."),
    min_words: int = typer.Option(1, "--min-words", min=1, help="Shortest caption in words."),
    no_repeat: int = typer.Option(3, "--no-repeat", min=0, help="Never repeat an n-gram of this length (0 = off)."),
    length_penalty: float = typer.Option(0.0, "--length-penalty", min=0.0, help="GNMT alpha: > 0 favours longer "
                                                                                "captions in beam search."),
    json_out: bool = typer.Option(False, "--json", help="Print the captions as JSON."),
):
    """Caption world pictures with a trained captioner: it names only shapes, colours, sizes and materials
    of objects it found. Exit status 1 when any picture could not be read."""
    from ..readers.image import read_image
    from ..world.captioner import WorldCaptioner

    with failing_cleanly():
        captioner = WorldCaptioner.load(model)
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
