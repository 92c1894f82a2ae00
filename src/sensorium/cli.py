"""The `sensorium` command line: index, search, classify, calibrate, info, roots, forget, speak, verify,
models, demo, train, align, evaluate, serve.

Exit status: 0 success; 1 an error (message on one line); 2 a usage or query error;
3 `index` finished but at least one file failed (each listed with its reason).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import CollectionLockedError, QueryError, SensoriumError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FILES_FAILED = 3

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Sensorium: offline multimodal search and understanding of your media.")

CollectionOpt = typer.Option(..., "--collection", "-c", help="Folder holding the collection's index.")


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> None:
    _console(stderr=True).print(f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(code)


def _note(messages: list[str]) -> None:
    """Things the user should know that are not errors (a root re-attached or missing), on stderr."""
    console = _console(stderr=True)
    for message in messages:
        console.print("[yellow]note:[/yellow] ", markup=True, end="")
        console.print(message, markup=False)


@app.command()
def index(
    folder: Path = typer.Argument(..., help="Folder of photos, recordings, videos and notes."),
    collection: Path = CollectionOpt,
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    clip: Optional[Path] = typer.Option(None, "--clip", help="A local transformers CLIP checkpoint to add a CLIP space."),
    no_ocr: bool = typer.Option(False, "--no-ocr", help="Do not read text inside images (faster)."),
    no_people: bool = typer.Option(False, "--no-people", help="Do not look for people and faces in images."),
    text_model: Optional[Path] = typer.Option(None, "--text-model", help="Your own sentence-transformers "
                                              "MiniLM-compatible folder instead of the packaged one."),
    image_weights: Optional[Path] = typer.Option(None, "--image-weights", help="Your own EfficientNet-Lite0 "
                                                 "weights (.safetensors) instead of the packaged ones."),
    speech_model: Optional[Path] = typer.Option(None, "--speech-model", help="Your own CTranslate2 Whisper "
                                                "folder instead of the packaged Whisper base."),
    space: Optional[Path] = typer.Option(None, "--space", help="Attach this learned space (`sensorium align "
                                         "--out` folder) first; searches then combine it with the bridge."),
    detach_space: bool = typer.Option(False, "--detach-space", help="Remove the attached learned space first."),
):
    """Index FOLDER incrementally: new and changed files are embedded, deleted ones removed."""
    import dataclasses

    from .collection import Collection, stored_experts
    from .experts import ExpertConfig

    if not folder.is_dir():
        _fail(f"{folder}: not a folder", EXIT_USAGE)
    if space is not None and detach_space:
        _fail("--space and --detach-space: give one or the other", EXIT_USAGE)
    if space is not None and not space.is_dir():
        _fail(f"--space {space}: not a folder", EXIT_USAGE)
    for option, given, want_dir in (("--clip", clip, True), ("--text-model", text_model, True),
                                    ("--speech-model", speech_model, True), ("--image-weights", image_weights, False)):
        if given is not None and not (given.is_dir() if want_dir else given.is_file()):
            _fail(f"{option} {given}: not a {'folder' if want_dir else 'file'}", EXIT_USAGE)
    # options given change the collection's stored expert settings; the others keep theirs
    changes = {name: str(path.resolve()) for name, path in (("clip_dir", clip), ("text_dir", text_model),
               ("image_weights", image_weights), ("speech_dir", speech_model)) if path is not None}
    changes.update({name: False for name, off in (("ocr", no_ocr), ("people", no_people)) if off})
    config = dataclasses.replace(stored_experts(collection) or ExpertConfig(), **changes) if changes else None
    try:
        col = Collection(collection, experts=config)
        if detach_space and col.detach_space() and not json_out:
            _console().print("detached the learned space")
        if space is not None:
            attached = col.attach_space(space, progress=None if json_out else _progress_bar("attaching"))
            _stop_progress()
            if not json_out:
                info = attached["space"]
                _console().print(f"attached space {info['id']} ({info['dim']}-d, w = {info['weight']:g}): "
                                 f"{attached['embedded']} segments embedded, {attached['vectors']} learned vectors "
                                 f"in {attached['seconds']:.1f} s")
        report = col.index(folder, progress=None if json_out else _progress_bar())
        _stop_progress()
        _note([*col.notices, *report.notices])
        col.notices.clear()
        _note(col.root_notices())
    except CollectionLockedError as error:
        _fail(str(error), EXIT_ERROR)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    finally:
        _stop_progress()
    if json_out:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        console = _console()
        console.print(
            f"indexed {report.folder}: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.touched} touched, {report.removed} removed, "
            f"{len(report.failed)} failed in {report.seconds:.1f} s")
        for path, reason in report.failed:
            console.print(f"  [yellow]failed[/yellow] {path}: {reason}", markup=True)
    if report.failed:
        raise typer.Exit(EXIT_FILES_FAILED)


_BAR = {}


def _progress_bar(label: str = "indexing"):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[name]}", style="dim"), console=_console(stderr=True),
                        transient=True)
    progress.start()
    task = progress.add_task(label, total=None, name="")
    _BAR["progress"] = progress

    def update(done: int, total: int, path: str = "") -> None:
        progress.update(task, completed=done, total=total, name=Path(path).name if path else "")

    return update


def _stop_progress() -> None:
    progress = _BAR.pop("progress", None)
    if progress is not None:
        progress.stop()


@app.command()
def search(
    query: Optional[str] = typer.Argument(None, help="Text to search for."),
    collection: Path = CollectionOpt,
    image: Optional[Path] = typer.Option(None, "--image", help="Search by an example image."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Search by a spoken query (audio file)."),
    modality: Optional[str] = typer.Option(None, "--modality", "--kind",
                                           help="Only items of this modality: text, image, audio, video "
                                                "(--kind is the older spelling)."),
    k: int = typer.Option(10, "-k", help="How many results."),
    json_out: bool = typer.Option(False, "--json", help="Print results as JSON."),
):
    """Search a collection by text, by an example image or by a spoken query."""
    from .collection import Collection

    if not (collection / "collection.json").exists():
        _fail(f"{collection}: no collection here (run `sensorium index FOLDER -c {collection}` first)", EXIT_USAGE)
    try:
        col = Collection(collection)
        hits = col.search(text=query, image=image, audio=audio, modality=modality, k=k)
        _note(col.root_notices())
    except QueryError as error:
        _fail(str(error), EXIT_USAGE)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    if json_out:
        print(json.dumps([h.as_dict() for h in hits], indent=2))
        return
    console = _console()
    if not hits:
        console.print("no results")
    for rank, hit in enumerate(hits, 1):
        when = f" [{hit.start:.1f}-{hit.end:.1f} s]" if hit.start is not None else ""
        console.print(f"{rank:2d}. {hit.score:.3f}  {hit.modality:5s}  {hit.path}{when}")
        console.print(f"      {hit.why}", style="dim")


@app.command()
def classify(
    paths: list[Path] = typer.Argument(..., help="Image, audio, video or text files (one or more)."),
    labels: str = typer.Option(..., "--labels", help="Comma-separated candidate labels."),
    json_out: bool = typer.Option(False, "--json", help="Print the ranking as JSON."),
    space: Optional[Path] = typer.Option(None, "--space", help="A learned space (align --out folder, or a "
                                         "collection with one attached) to combine with the bridge."),
    together: bool = typer.Option(False, "--together", help="Let short spoken clips that sound alike inform "
                                  "each other's labels (for many recordings of the same words)."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="A `sensorium calibrate` file for "
                                               "these labels: calibrated probabilities."),
    confidence: Optional[float] = typer.Option(None, "--confidence", min=0.5, max=0.999, help="With "
                                               "--calibration: the set of labels holding the truth this often."),
    abstain: bool = typer.Option(False, "--abstain", help="With --calibration: answer 'uncertain' unless the "
                                 "set at --confidence (0.9) holds one label."),
    per_label: bool = typer.Option(False, "--per-label", help="Sets with the coverage for every label, not "
                                   "only on average (Mondrian)."),
):
    """Rank free-text labels for files (zero-shot). Exit status 1 when any file could not be classified."""
    from .classification import calibrated
    from .classification import classify as run
    from .classification import classify_many
    from .progress import reporting

    profile = None
    if (confidence is not None or abstain or per_label) and calibration is None:
        _fail("--confidence, --abstain and --per-label need --calibration FILE (see `sensorium calibrate`)", EXIT_USAGE)
    if calibration is not None:
        from .trust.profile import CalibrationProfile

        from .classification import clean_labels

        try:
            profile = CalibrationProfile.load(calibration)
            profile.order(clean_labels(labels))  # the same label set, checked before any work
        except SensoriumError as error:
            _fail(str(error), EXIT_USAGE)

    def trusted(result):
        if profile is None:
            return result
        return calibrated(result, profile, confidence=confidence, abstain=abstain, per_label=per_label)

    if len(paths) == 1 and not together:
        try:
            with reporting(None if json_out else _stage_progress()):
                result = trusted(run(paths[0], labels, space=space))
        except QueryError as error:
            _fail(str(error), EXIT_USAGE)
        except SensoriumError as error:
            _fail(str(error), EXIT_ERROR)
        finally:
            _stop_progress()
        if json_out:
            print(json.dumps(result.as_dict(), indent=2))
            return
        _print_classification(_console(), result)
        return
    try:
        bar = None if json_out else _progress_bar("classifying")
        with reporting(None if json_out else _stage_progress()):
            batch = classify_many(paths, labels, space=space, together=together, progress=bar)
        batch.results = [trusted(result) for result in batch.results]
    except QueryError as error:
        _fail(str(error), EXIT_USAGE)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    finally:
        _stop_progress()
    if json_out:
        print(json.dumps(batch.as_dict(), indent=2))
    else:
        console = _console()
        for result in batch.results:
            _print_classification(console, result)
        for path, reason in batch.failures:
            console.print(f"failed: {path}: {reason}", style="red")
    if batch.failures:
        raise typer.Exit(EXIT_ERROR)


def _print_classification(console, result) -> None:
    console.print(f"{result.path} ({result.modality}, {result.method})", markup=False)
    for score in result.labels:
        console.print(f"  {score.score:6.3f}  {score.label}", markup=False)
    if result.prediction_set is not None:
        shown = ", ".join(result.prediction_set) or "none (no label is likely enough)"
        console.print(f"  set at {result.confidence:.0%}: {shown}", markup=False)
    if result.decision is not None:
        console.print(f"  decision: {result.decision}", markup=False)


@app.command()
def calibrate(
    examples: Path = typer.Argument(..., help="A folder with one subfolder of files per label, or a CSV "
                                    "manifest with columns path,label."),
    out: Path = typer.Option(..., "--out", "-o", help="The calibration file to write (JSON)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated labels (default: the "
                                         "examples' labels)."),
    space: Optional[Path] = typer.Option(None, "--space", help="The learned space `classify` will use."),
    diagram: Optional[Path] = typer.Option(None, "--diagram", help="Also draw a reliability diagram (PNG)."),
    json_out: bool = typer.Option(False, "--json", help="Print the measures as JSON."),
):
    """Fit calibrated confidence for `classify` from labelled examples: a temperature, and conformal
    scores for label sets with a coverage guarantee (`classify --calibration OUT --confidence 0.9`)."""
    import numpy as np

    from .classification import classify_many, clean_labels
    from .progress import reporting
    from .trust import calibration as measures
    from .trust.diagram import reliability_diagram
    from .trust.examples import labelled_examples
    from .trust.profile import CalibrationProfile

    try:
        pairs = labelled_examples(examples)
    except SensoriumError as error:
        _fail(str(error), EXIT_USAGE)
    names = clean_labels(labels) if labels else sorted({label for _, label in pairs})
    unknown = sorted({label for _, label in pairs} - set(names))
    if unknown:
        _fail(f"{examples}: examples labelled {', '.join(unknown)}, which --labels does not list", EXIT_USAGE)
    if len(names) < 2:
        _fail("calibrating needs at least two labels", EXIT_USAGE)
    try:
        bar = None if json_out else _progress_bar("classifying examples")
        with reporting(None if json_out else _stage_progress()):
            batch = classify_many([path for path, _ in pairs], names, space=space, progress=bar)
    except QueryError as error:
        _fail(str(error), EXIT_USAGE)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    finally:
        _stop_progress()
    label_of = {str(path): label for path, label in pairs}
    probs = np.array([[{s.label: s.score for s in r.labels}[name] for name in names] for r in batch.results])
    truth = np.array([names.index(label_of[r.path]) for r in batch.results], dtype=int)
    modalities = [r.modality for r in batch.results]
    try:
        profile = CalibrationProfile.fit(probs, truth, names, modality=max(set(modalities), key=modalities.count)
                                         if modalities else None)
    except ValueError as error:
        _fail(f"{examples}: {error}", EXIT_USAGE)
    profile.save(out)
    if diagram is not None:
        from .provenance.record import input_hash

        honest, _ = measures.cross_fitted(measures.as_logits(probs), truth)
        reliability_diagram(diagram, [("before", probs, truth), ("after (cross-fitted)", honest, truth)])
        _sign(diagram, "reliability diagram", [], {"calibration": input_hash(out)}, {"labels": names})
    summary = {"calibration": str(out), "labels": names, "temperature": profile.temperature,
               "before": profile.before, "after": profile.after,
               "failures": [{"path": p, "reason": r} for p, r in batch.failures]}
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        console = _console()
        console.print(f"calibrated {len(truth)} examples of {len(names)} labels: temperature "
                      f"{profile.temperature:.3g}, written to {out}", markup=False)
        for key, name in (("accuracy", "accuracy"), ("ece", "ECE (15 bins)"), ("adaptive_ece", "adaptive ECE"),
                          ("nll", "NLL"), ("brier", "Brier")):
            console.print(f"  {name:14s} {profile.before[key]:.4f} -> {profile.after[key]:.4f}", markup=False)
        console.print("  (after: each example under a temperature fitted without it, 5 folds)", style="dim")
        if diagram is not None:
            console.print(f"reliability diagram: {diagram}", markup=False)
        for path, reason in batch.failures:
            console.print(f"  [yellow]skipped[/yellow] {path}: {reason}", markup=True)


@app.command()
def info(
    collection: Path = CollectionOpt,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Counts of items by modality, and every failure with its file and reason."""
    from .collection import Collection

    if not (collection / "collection.json").exists():
        _fail(f"{collection}: no collection here", EXIT_USAGE)
    data = Collection(collection).info()
    if json_out:
        print(json.dumps(data, indent=2))
        return
    console = _console()
    console.print(f"collection {data['collection']}")
    for modality, count in sorted(data["counts"].items()):
        console.print(f"  {modality:6s} {count}")
    space = data.get("space")
    if space and space.get("attached"):
        console.print(f"learned space {space['id']}: {space['dim']}-d, w = {space['weight']:g}, "
                      f"{space['vectors']} vectors, from {space['source']}", markup=False)
    if space and space.get("pending"):
        console.print(f"unfinished attach of space {space['pending']['id']} (run `sensorium index ... --space "
                      f"{space['pending']['source']}` again to finish)", markup=False)
    if data["failures"]:
        console.print(f"{len(data['failures'])} failed files:")
        for failure in data["failures"]:
            console.print(f"  {failure['path']}: {failure['reason']}")
    _print_roots(console, data["roots"])
    _note(data["notices"])


@app.command()
def forget(
    paths: list[Path] = typer.Argument(..., help="Files, or folders (every file under them), to forget."),
    collection: Path = CollectionOpt,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Remove files from the collection with everything made from them: text, vectors, thumbnails."""
    from .collection import Collection

    if not (collection / "collection.json").exists():
        _fail(f"{collection}: no collection here", EXIT_USAGE)
    try:
        result = Collection(collection).forget(paths)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    if not result["items"]:
        _fail(f"{', '.join(str(p) for p in paths)}: nothing stored for that in {collection}", EXIT_USAGE)
    if json_out:
        print(json.dumps(result, indent=2))
    else:
        _console().print(f"forgot {result['items']} files: {result['segments']} segments and "
                         f"{result['thumbnails']} thumbnails; their text and vectors are overwritten in the "
                         "collection's files", markup=False)
    if not result["log_emptied"]:
        _note(["another process was reading the collection, so its write-ahead log still holds old pages; "
               "they are overwritten at the next write or when that process stops"])
    if result["still_on_disk"]:
        _note([f"{result['still_on_disk']} of these files are still on disk: the next `sensorium index` of their "
               "folder adds them again (move or delete them first)"])


VERDICT_EXIT = {"valid": 0, "tampered": 3, "unsigned": 4, "unknown signer": 5}


def _sign(path: Path, action: str, models: list[dict], inputs: dict[str, str], parameters: dict) -> str:
    """Sign a file Sensorium generated; returns how, for the message printed after it."""
    from .provenance.record import generation
    from .provenance.signing import sign_file

    carrier = sign_file(path, generation(action, models, inputs, parameters))
    return "C2PA manifest embedded" if carrier == path else f"signed sidecar {carrier.name}"


@app.command()
def speak(
    text: str = typer.Argument(..., help="What to say."),
    out: Path = typer.Option(..., "--out", "-o", help="The WAV file to write."),
    voice: str = typer.Option("en-us", "--voice", help="An espeak-ng voice (en-us, en-gb, fr, de ...)."),
    rate: int = typer.Option(160, "--rate", help="Words per minute."),
    pitch: int = typer.Option(50, "--pitch", min=0, max=100, help="0-100."),
    no_sign: bool = typer.Option(False, "--no-sign", help="Do not sign the file (no provenance manifest)."),
):
    """Speak text into a WAV file (espeak-ng), signed with a C2PA manifest saying how it was made."""
    from .experts.tts import info, save_wav, synthesize
    from .provenance.record import input_hash

    if out.suffix.lower() != ".wav":
        _fail(f"--out {out}: speech is written as WAV (name it .wav)", EXIT_USAGE)
    try:
        speech = synthesize(text, voice=voice, rate_wpm=rate, pitch=pitch)
        save_wav(speech, out)
        how = "not signed" if no_sign else _sign(out, "speak", [info().as_dict()], {"text": input_hash(text)},
                                                  {"voice": voice, "rate_wpm": rate, "pitch": pitch})
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    _console().print(f"wrote {out}: {speech.duration:.1f} s of speech; {how}", markup=False)


TRANSCRIPT_FORMATS = (".txt", ".json", ".srt")


@app.command()
def transcribe(
    recording: Path = typer.Argument(..., help="A recording or video (any length up to 12 hours)."),
    out: Path = typer.Option(..., "--out", "-o", help="Transcript to write: .txt, .json (with word times) or .srt."),
    language: str = typer.Option("en", "--language", help="Whisper language code."),
    no_sign: bool = typer.Option(False, "--no-sign", help="Do not sign the transcript (no provenance sidecar)."),
):
    """Transcribe speech (Whisper base) into a text, JSON or subtitle file, signed with a provenance sidecar."""
    from .experts import Experts
    from .provenance.record import input_hash
    from .readers import AudioWindows, read_for_index

    if out.suffix.lower() not in TRANSCRIPT_FORMATS:
        _fail(f"--out {out}: write .txt, .json or .srt", EXIT_USAGE)
    try:
        payload = read_for_index(recording)
        sound = payload if isinstance(payload, AudioWindows) else getattr(payload, "audio", None)
        if sound is None:
            _fail(f"{recording}: no sound to transcribe", EXIT_USAGE)
        experts = Experts()
        segments = []
        bar = _progress_bar("transcribing")
        for window in sound:
            offset = float(getattr(window, "offset", 0.0) or 0.0)
            for segment in experts.speech.transcribe(window, language=language):
                segments.append({"start": round(segment.start + offset, 3), "end": round(segment.end + offset, 3),
                                 "text": segment.text, "words": [{"start": round(w.start + offset, 3),
                                                                   "end": round(w.end + offset, 3), "text": w.text}
                                                                  for w in segment.words]})
            total = getattr(sound, "declared_seconds", None)  # progress in seconds of the recording
            bar(round(offset + window.duration), round(total) if total else None, str(recording))
        _stop_progress()
        out.write_text(_transcript(segments, out.suffix.lower()), encoding="utf-8")
        how = "not signed" if no_sign else _sign(out, "transcribe", [experts.speech.info().as_dict()],
                                                  {"recording": input_hash(recording)},
                                                  {"language": language, "format": out.suffix.lower()})
    except SensoriumError as error:
        _stop_progress()
        _fail(str(error), EXIT_ERROR)
    _console().print(f"wrote {out}: {len(segments)} segments; {how}", markup=False)


def _transcript(segments: list[dict], form: str) -> str:
    def clock(seconds: float, comma: bool = False) -> str:
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        text = f"{int(hours):02d}:{int(minutes):02d}:{secs:06.3f}"
        return text.replace(".", ",") if comma else text

    if form == ".json":
        return json.dumps({"segments": segments}, indent=1, ensure_ascii=False) + "\n"
    if form == ".srt":
        return "\n".join(f"{n}\n{clock(s['start'], True)} --> {clock(s['end'], True)}\n{s['text']}\n"
                         for n, s in enumerate(segments, 1))
    return "".join(f"[{clock(s['start'])}] {s['text']}\n" for s in segments)


@app.command()
def verify(
    path: Path = typer.Argument(..., help="A file Sensorium generated (or any file with a C2PA manifest)."),
    json_out: bool = typer.Option(False, "--json", help="Print the verdict and manifest as JSON."),
):
    """Check a file's provenance. Exit status: 0 valid, 3 tampered, 4 unsigned, 5 signed by a key not trusted here."""
    from .provenance.verification import verify as check

    if not path.is_file():
        _fail(f"{path}: no such file", EXIT_USAGE)
    try:
        verdict = check(path)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    if json_out:
        print(json.dumps(verdict.as_dict(), indent=2))
    else:
        console = _console()
        colour = {"valid": "green", "tampered": "red"}.get(verdict.state, "yellow")
        console.print(f"[{colour}]{verdict.state}[/{colour}] ", markup=True, end="")
        console.print(f"{path}" + (f" (signed by {verdict.signer}; {verdict.carrier})" if verdict.signer else ""),
                      markup=False)
        for reason in verdict.reasons:
            console.print(f"  {reason}", markup=False, style="dim")
        record = verdict.record or {}
        if record:
            generator = record.get("generator", {})
            console.print(f"  made by {generator.get('name')} {generator.get('version')}: {record.get('action')}",
                          markup=False)
            for model in record.get("models", []):
                console.print(f"  model {model.get('name')} {model.get('version')} sha256 {model.get('sha256')}",
                              markup=False)
            for name, value in (record.get("parameters") or {}).items():
                console.print(f"  {name} = {value}", markup=False)
    raise typer.Exit(VERDICT_EXIT.get(verdict.state, EXIT_ERROR))


roots_app = typer.Typer(no_args_is_help=True, help="The folders a collection's files are stored relative to: "
                        "list them, or point one at the place its media moved to (nothing is re-embedded).")
app.add_typer(roots_app, name="roots")


def _print_roots(console, roots: list[dict]) -> None:
    if not roots:
        return
    console.print("roots:")
    width = max(len(root["name"]) for root in roots)
    for root in roots:
        state = "[red]missing[/red]" if root["missing"] else "ok"
        console.print(f"  {root['name']:{width}s}  {root['items']:6d} items  {state:7s}  ", markup=True, end="")
        console.print(root["path"], markup=False)


@roots_app.command("list")
def roots_list(
    collection: Path = CollectionOpt,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Each root: its name, folder, how many items are stored under it, and whether its files are there."""
    from .collection import Collection

    if not (collection / "collection.json").exists():
        _fail(f"{collection}: no collection here", EXIT_USAGE)
    col = Collection(collection)
    roots = col.roots()
    if json_out:
        print(json.dumps(roots, indent=2))
    else:
        _print_roots(_console(), roots) if roots else _console().print("no roots (nothing indexed yet)")
    _note(col.root_notices())


@roots_app.command("set")
def roots_set(
    name: str = typer.Argument(..., help="The root's name (see `sensorium roots list`)."),
    folder: Path = typer.Argument(..., help="Where its files are now."),
    collection: Path = CollectionOpt,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Point root NAME at FOLDER, where its media now are; a new NAME names a root there."""
    from .collection import Collection

    if not (collection / "collection.json").exists():
        _fail(f"{collection}: no collection here", EXIT_USAGE)
    if not folder.is_dir():
        _fail(f"{folder}: not a folder", EXIT_USAGE)
    try:
        col = Collection(collection)
        result = col.set_root(name, folder)
    except (ValueError, SensoriumError) as error:
        _fail(str(error), EXIT_USAGE if isinstance(error, ValueError) else EXIT_ERROR)
    if json_out:
        print(json.dumps(result, indent=2))
        return
    console = _console()
    if result["from"] is None:
        console.print(f"root {name!r} is now {result['to']}", markup=False)
        return
    if result["from"] == result["to"]:
        console.print(f"root {name!r} is already {result['to']}", markup=False)
        return
    console.print(f"root {name!r}: {result['from']} -> {result['to']} ({result['found']} of {result['sampled']} "
                  "sampled files found there); nothing re-embedded", markup=False)
    for moved in result["moved"][1:]:
        console.print(f"  root {moved['name']!r} moved with it: {moved['path']}", markup=False)
    if result["sampled"] and result["found"] < result["sampled"]:
        _note([f"{result['sampled'] - result['found']} of {result['sampled']} sampled files are not in {result['to']} "
               "with their recorded size; check the folder, then `sensorium index` it to bring changes in"])


@app.command()
def models(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """The pretrained models Sensorium uses: package, version, checksum, licence, size."""
    from .experts import Experts

    try:
        infos = Experts().models()
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    if json_out:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    from rich.table import Table

    table = Table("model", "task", "package", "version", "licence", "size", "sha256")
    for i in infos:
        table.add_row(i.name, i.task, i.package, i.version, i.licence, f"{i.size_bytes / 1e6:.1f} MB", i.sha256[:16])
    _console().print(table)


@app.command()
def demo(
    directory: Optional[Path] = typer.Option(None, "--dir", help="Where to build the sample collection."),
):
    """Build a sample collection from built-in data, index it and tour searches in every direction."""
    from .demo.tour import run_tour

    try:
        run_tour(directory)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)


@app.command()
def train(
    config: Path = typer.Argument(..., help="TOML config (see examples/avmnist.toml)."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints, best weights, metrics.jsonl."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped."),
):
    """Train a multimodal (or unimodal) model from a config; under torchrun, one replica per process."""
    from .training.runs import run_training

    try:
        summary = run_training(config, out, resume=resume)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if (out / "metrics.jsonl").is_file() else []
    if lines:
        _console().print(lines[-1], markup=False)
    _console().print(f"trained {summary['step']} steps over {summary['epoch']} epochs; best epoch "
                     f"{summary['best_epoch'] + 1}; weights in {out / 'best'}", markup=False)


@app.command()
def align(
    config: Path = typer.Argument(..., help="TOML config (see examples/align_coco.toml, examples/align_speech.toml)."),
    out: Path = typer.Option(..., "--out", help="Folder for the space (weights, config, align.json) and its "
                                                "training run (checkpoint/, metrics.jsonl)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the training run in --out exactly where it stopped."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Learn a shared space for any two modalities (or several, bound through a hub) on paired data,
    on top of the frozen experts; runs alone or under torchrun."""
    from .align.job import run_align

    try:
        summary = run_align(config, out, progress=None if json_out else _stage_progress(), resume=resume)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    finally:
        _stop_progress()
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    if json_out:
        print(json.dumps(summary, indent=1))
        return
    metrics = summary["metrics_train"]
    if "bridge" in metrics:
        scores = (f"caption->photo R@1 bridge {metrics['bridge']['t2i_r1']:.3f}, "
                  f"combined {metrics['combined']['t2i_r1']:.3f}")
    else:
        scores = ", ".join(f"{edge['key']} {'->'.join(reversed(edge['heads']))} R@1 "
                           f"{metrics[edge['key']]['r1_right_to_left']:.3f}" for edge in summary["edges"])
    _console().print(
        f"trained on {summary['data']['pairs']} pairs in {summary['seconds']:.1f} s "
        f"({summary['trainer']['step']} steps); w = {summary['weight']:g} ({summary['weight_policy']}); "
        f"training-set {scores}; space in {out}", markup=False)


def _stage_progress():
    """A (stage, done, total) callback that shows a bar per stage, in the running display if there
    is one (e.g. below the "classifying" bar); also what `sensorium.progress.reporting` takes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = _BAR.get("progress")
    if progress is None:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=_console(stderr=True), transient=True)
        progress.start()
        _BAR["progress"] = progress
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total, name="")
        progress.update(tasks[stage], completed=done, total=total)

    return update


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `sensorium train`."),
    data: Path = typer.Option(..., "--data", help="CSV manifest or class-folder tree of labelled items."),
    noise: Optional[str] = typer.Option(None, "--noise", help="Also score under noise at these levels, comma-"
                                        "separated (MultiBench's are 0,0.1,...,1.0), and with each modality missing."),
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    diagram: Optional[Path] = typer.Option(None, "--diagram", help="Draw a reliability diagram (PNG): "
                                           "confidence before and after the temperature fitted in training."),
):
    """Accuracy, macro-F1, per-class scores and robustness (noise per modality, one modality missing)."""
    from .training.runs import evaluate_run

    try:
        levels = [float(x) for x in noise.split(",") if x.strip()] if noise is not None else None
    except ValueError:
        _fail(f"--noise: expected comma-separated numbers, got {noise!r}", EXIT_USAGE)
    try:
        report = evaluate_run(run, data, levels=levels, diagram=diagram)
        if diagram is not None and "calibration" in report:
            from .provenance.record import input_hash

            _sign(diagram, "reliability diagram", [], {"weights": input_hash(run / "best" / "model.safetensors")},
                  {"task": report["calibration"]["task"], "temperature": report["calibration"]["temperature"]})
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)
    if json_out:
        print(json.dumps(report, indent=1))
        return
    from rich.table import Table

    console = _console()
    for task, scores in report["tasks"].items():
        console.print(f"{task}: accuracy {scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f} "
                      f"on {report['items']} items ({report['items_per_s']:.0f} items/s)", markup=False)
        table = Table("class", "precision", "recall", "F1", "support", title=f"{task}: per class")
        for name, c in scores["per_class"].items():
            table.add_row(name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
        console.print(table)
    if "calibration" in report:
        cal = report["calibration"]
        console.print(f"{cal['task']}: calibration with the temperature fitted on validation (T = {cal['temperature']:.3g})",
                      markup=False)
        for key, name in (("ece", "ECE (15 bins)"), ("adaptive_ece", "adaptive ECE"), ("nll", "NLL"), ("brier", "Brier")):
            console.print(f"  {name:14s} {cal['before'][key]:.4f} -> {cal['after'][key]:.4f}", markup=False)
    robust = report.get("robustness")
    if robust is None:
        return
    table = Table("modality", *[f"noise {x:g}" for x in robust["levels"]], "relative", "missing",
                  title="accuracy under noise on one modality / with it missing")
    for name, curve in robust["noise"].items():
        missing = robust["missing"].get(name)
        table.add_row(name, *[f"{a:.3f}" for a in curve], f"{robust['relative'][name]:.3f}",
                      "-" if missing is None else f"{missing:.3f}")
    console.print(table)


@app.command()
def serve(
    collection: Path = CollectionOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8765, "--port", help="TCP port."),
    root: Optional[list[Path]] = typer.Option(None, "--root", help="Folder clients may index and open "
                                              "(repeatable; default: the folders the collection was indexed from, "
                                              "else the current folder)."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Permit a non-loopback --host."),
    thumbnail_mb: int = typer.Option(256, "--thumbnail-cache-mb", min=1,
                                     help="Disk budget of the thumbnail cache; least recently used go first."),
    allow_origin: Optional[list[str]] = typer.Option(None, "--allow-origin", help="A web page origin "
                                                     "(scheme://host:port) allowed to search, upload and index "
                                                     "besides the served page (repeatable)."),
    calibration: Optional[list[Path]] = typer.Option(None, "--calibration", help="A `sensorium calibrate` "
                                                     "file: classify requests for its labels are calibrated and "
                                                     "may ask for sets and abstention (repeatable)."),
):
    """Serve the collection over HTTP: a web page at / and a JSON API under /api/v1."""
    from .serve import run_server
    from .serve.app import is_loopback
    from .serve.security import TOKEN_FILE, normalise_origin

    roots = root or _indexed_folders(collection) or [Path.cwd()]
    for folder in roots:
        if not folder.is_dir():
            _fail(f"--root {folder}: not a folder", EXIT_USAGE)
    if not is_loopback(host) and not allow_remote:
        _fail(f"--host {host}: listening beyond this machine needs --allow-remote", EXIT_USAGE)
    for origin in allow_origin or []:
        try:
            normalise_origin(origin)
        except ValueError as error:
            _fail(f"--allow-origin {error}", EXIT_USAGE)
    err = _console(stderr=True)
    err.print(f"serving {collection} on http://{host}:{port}/ (roots: {', '.join(str(r) for r in roots)}); "
              f"write token in {Path(collection).expanduser().resolve() / TOKEN_FILE}")
    try:
        run_server(collection, roots, host=host, port=port, allow_remote=allow_remote, thumbnail_mb=thumbnail_mb,
                   allow_origins=allow_origin, calibrations=calibration)
    except SensoriumError as error:
        _fail(str(error), EXIT_ERROR)


def _indexed_folders(collection: Path) -> list[Path]:
    """The collection's roots whose files are there, outermost only: what `serve` offers by default."""
    from .collection import Collection

    if not (collection / "collection.json").exists():
        return []
    with Collection(collection) as col:
        _note(col.root_notices())
        present = [Path(root["path"]) for root in col.roots() if not root["missing"]]
    return [folder for folder in present if not any(other != folder and folder.is_relative_to(other) for other in present)]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
