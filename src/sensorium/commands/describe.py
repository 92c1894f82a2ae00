"""`sensorium describe` and `sensorium ask`: words about photos, composed from what the experts found.

Neither is a learned captioner: `describe` states what the classifier, person detector and OCR
found above a confidence, hedges with "probably" below it, and leaves out the rest; `ask`
answers the questions those findings support and "cannot tell" the others.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .console import EXIT_ERROR, EXIT_USAGE, fail, failing_cleanly, make_console, progress_bar, stop_progress

# DescribeOptions' defaults (tests/test_describe.py checks they agree), written out so that starting the
# CLI imports no model code
SURE, PROBABLE = 0.7, 0.3


def _options(sure: float, probable: float):
    from ..generation import DescribeOptions

    try:
        return DescribeOptions(sure=sure, probable=probable)
    except ValueError as error:
        fail(f"--sure/--probable: {error}", EXIT_USAGE)


def describe(
    photos: list[Path] = typer.Argument(..., help="Photos (one or more)."),
    json_out: bool = typer.Option(False, "--json", help="Print each description with its findings as JSON."),
    speak: Optional[Path] = typer.Option(None, "--speak", help="Also read the description(s) aloud into this "
                                         "WAV file (espeak-ng), signed like `sensorium speak`."),
    voice: str = typer.Option("en-us", "--voice", help="The espeak-ng voice for --speak."),
    rate: int = typer.Option(160, "--rate", help="Words per minute for --speak."),
    sure: float = typer.Option(SURE, "--sure", help="Confidence at which a finding is stated as fact."),
    probable: float = typer.Option(PROBABLE, "--probable", help="Confidence at which a finding is said with "
                                   "'probably'; below it, left out."),
):
    """Describe photos in a sentence each, from the classifier, person detector and OCR findings (not a
    learned captioner). Exit status 1 when any photo could not be read."""
    from ..generation.photos import describe_photos

    options = _options(sure, probable)
    if speak is not None and speak.suffix.lower() != ".wav":
        fail(f"--speak {speak}: speech is written as WAV (name it .wav)", EXIT_USAGE)
    update = None if json_out or len(photos) == 1 else progress_bar("describing")
    with failing_cleanly():
        results, failures = describe_photos(photos, options=options, progress=update)
    stop_progress()
    console = make_console()
    if json_out:
        print(json.dumps({"results": [{"path": path, **d.as_dict()} for path, d in results],
                          "failures": [{"path": p, "reason": r} for p, r in failures]}, indent=2))
    else:
        for path, description in results:
            console.print(description.sentence if len(photos) == 1 else f"{path}: {description.sentence}",
                          markup=False)
        for path, reason in failures:
            make_console(stderr=True).print(f"failed: {reason}", style="red", markup=False)
    if speak is not None and results:
        text = " ".join(d.sentence if len(photos) == 1 else f"{Path(p).name}: {d.sentence}" for p, d in results)
        from .trust import spoken_file

        done = spoken_file(text, speak, "describe", voice, rate)
        if not json_out:
            make_console(stderr=True).print(done, markup=False)
    if failures:
        raise typer.Exit(EXIT_ERROR)


def ask(
    photo: Path = typer.Argument(..., help="A photo."),
    question: str = typer.Argument(..., help="A question in English: is there a dog? how many people? what does "
                                             "the sign say? what is this?"),
    json_out: bool = typer.Option(False, "--json", help="Print the answer, its confidence and reason as JSON."),
):
    """Answer a question about a photo from the experts' findings; "cannot tell" when they cannot support
    an answer (the reason says why)."""
    from ..generation.photos import ask_photo

    if not question.strip():
        fail("question: empty; ask something about the photo", EXIT_USAGE)
    with failing_cleanly():
        try:
            answer = ask_photo(photo, question)
        except ValueError as error:
            fail(str(error), EXIT_USAGE)
    if json_out:
        print(json.dumps(answer.as_dict(), indent=2))
        return
    console = make_console()
    console.print(answer.answer, markup=False)
    console.print(f"({answer.reason})", style="dim", markup=False)
