"""Commands of trust: calibrating a classifier, and making and checking signed files.

`calibrate` fits a calibration profile from labelled examples (`sensorium.trust`); `speak` and
`transcribe` write files signed with their provenance, `verify` checks any file's
(`sensorium.provenance`). Registered on the `sensorium` app by `sensorium.cli`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import SensoriumError
from .console import (EXIT_ERROR, EXIT_USAGE, fail, failing_cleanly, make_console, progress_bar, stage_progress,
                      stop_progress)


def classify_with_progress(paths, labels, space, quiet: bool, label: str = "classifying", together: bool = False):
    """`classify_many` behind progress bars (none when `quiet`); a bad query or a failure of the
    whole batch ends the command with its exit status (one bad file never does)."""
    from ..classification import classify_many
    from ..progress import reporting

    with failing_cleanly():
        bar = None if quiet else progress_bar(label)
        with reporting(None if quiet else stage_progress()):
            return classify_many(paths, labels, space=space, together=together, progress=bar)


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

    from ..classification import clean_labels
    from ..trust import calibration as measures
    from ..trust.diagram import reliability_diagram
    from ..trust.examples import labelled_examples
    from ..trust.profile import CalibrationProfile

    try:
        pairs = labelled_examples(examples)
    except SensoriumError as error:
        fail(str(error), EXIT_USAGE)
    names = clean_labels(labels) if labels else sorted({label for _, label in pairs})
    unknown = sorted({label for _, label in pairs} - set(names))
    if unknown:
        fail(f"{examples}: examples labelled {', '.join(unknown)}, which --labels does not list", EXIT_USAGE)
    if len(names) < 2:
        fail("calibrating needs at least two labels", EXIT_USAGE)
    batch = classify_with_progress([path for path, _ in pairs], names, space, quiet=json_out, label="classifying examples")
    label_of = {str(path): label for path, label in pairs}
    probs = np.array([[{s.label: s.score for s in r.labels}[name] for name in names] for r in batch.results])
    truth = np.array([names.index(label_of[r.path]) for r in batch.results], dtype=int)
    modalities = [r.modality for r in batch.results]
    try:
        profile = CalibrationProfile.fit(probs, truth, names, modality=max(set(modalities), key=modalities.count)
                                         if modalities else None)
    except ValueError as error:
        fail(f"{examples}: {error}", EXIT_USAGE)
    profile.save(out)
    if diagram is not None:
        from ..provenance.record import input_hash

        honest, _ = measures.cross_fitted(measures.as_logits(probs), truth)
        reliability_diagram(diagram, [("before", probs, truth), ("after (cross-fitted)", honest, truth)])
        sign_generated(diagram, "reliability diagram", [], {"calibration": input_hash(out)}, {"labels": names})
    summary = {"calibration": str(out), "labels": names, "temperature": profile.temperature,
               "before": profile.before, "after": profile.after,
               "failures": [{"path": p, "reason": r} for p, r in batch.failures]}
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        console = make_console()
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




VERDICT_EXIT = {"valid": 0, "tampered": 3, "unsigned": 4, "unknown signer": 5}


def sign_generated(path: Path, action: str, models: list[dict], inputs: dict[str, str], parameters: dict) -> str:
    """Sign a file Sensorium generated; returns how, for the message printed after it."""
    from ..provenance.record import generation
    from ..provenance.signing import sign_file

    carrier = sign_file(path, generation(action, models, inputs, parameters))
    return "C2PA manifest embedded" if carrier == path else f"signed sidecar {carrier.name}"


def spoken_file(text: str, out: Path, action: str, voice: str, rate: int, pitch: int = 50, sign: bool = True) -> str:
    """Speak `text` into the WAV file `out`, signed as made by `action` unless `sign` is off; what was
    written, in words. A synthesis or signing error ends the command (status 1)."""
    from ..experts.tts import info, save_wav, synthesize
    from ..provenance.record import input_hash

    try:
        speech = synthesize(text, voice=voice, rate_wpm=rate, pitch=pitch)
        save_wav(speech, out)
        how = sign_generated(out, action, [info().as_dict()], {"text": input_hash(text)},
                             {"voice": voice, "rate_wpm": rate, "pitch": pitch}) if sign else "not signed"
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    return f"wrote {out}: {speech.duration:.1f} s of speech; {how}"


def speak(
    text: str = typer.Argument(..., help="What to say."),
    out: Path = typer.Option(..., "--out", "-o", help="The WAV file to write."),
    voice: str = typer.Option("en-us", "--voice", help="An espeak-ng voice (en-us, en-gb, fr, de ...)."),
    rate: int = typer.Option(160, "--rate", help="Words per minute."),
    pitch: int = typer.Option(50, "--pitch", min=0, max=100, help="0-100."),
    no_sign: bool = typer.Option(False, "--no-sign", help="Do not sign the file (no provenance manifest)."),
):
    """Speak text into a WAV file (espeak-ng), signed with a C2PA manifest saying how it was made."""
    if out.suffix.lower() != ".wav":
        fail(f"--out {out}: speech is written as WAV (name it .wav)", EXIT_USAGE)
    make_console().print(spoken_file(text, out, "speak", voice, rate, pitch, sign=not no_sign), markup=False)


TRANSCRIPT_FORMATS = (".txt", ".json", ".srt")


def transcribe(
    recording: Path = typer.Argument(..., help="A recording or video (any length up to 12 hours)."),
    out: Path = typer.Option(..., "--out", "-o", help="Transcript to write: .txt, .json (with word times) or .srt."),
    language: str = typer.Option("en", "--language", help="Whisper language code."),
    no_sign: bool = typer.Option(False, "--no-sign", help="Do not sign the transcript (no provenance sidecar)."),
):
    """Transcribe speech (Whisper base) into a text, JSON or subtitle file, signed with a provenance sidecar."""
    from ..experts import Experts
    from ..provenance.record import input_hash
    from ..readers import AudioWindows, read_for_index

    if out.suffix.lower() not in TRANSCRIPT_FORMATS:
        fail(f"--out {out}: write .txt, .json or .srt", EXIT_USAGE)
    try:
        payload = read_for_index(recording)
        sound = payload if isinstance(payload, AudioWindows) else getattr(payload, "audio", None)
        if sound is None:
            fail(f"{recording}: no sound to transcribe", EXIT_USAGE)
        experts = Experts()
        segments = []
        bar = progress_bar("transcribing")
        for window in sound:
            offset = float(getattr(window, "offset", 0.0) or 0.0)
            for segment in experts.speech.transcribe(window, language=language):
                segments.append({"start": round(segment.start + offset, 3), "end": round(segment.end + offset, 3),
                                 "text": segment.text, "words": [{"start": round(w.start + offset, 3),
                                                                   "end": round(w.end + offset, 3), "text": w.text}
                                                                  for w in segment.words]})
            total = getattr(sound, "declared_seconds", None)  # progress in seconds of the recording
            bar(round(offset + window.duration), round(total) if total else None, str(recording))
        stop_progress()
        out.write_text(_transcript(segments, out.suffix.lower()), encoding="utf-8")
        how = "not signed" if no_sign else sign_generated(out, "transcribe", [experts.speech.info().as_dict()],
                                                  {"recording": input_hash(recording)},
                                                  {"language": language, "format": out.suffix.lower()})
    except SensoriumError as error:
        stop_progress()
        fail(str(error), EXIT_ERROR)
    make_console().print(f"wrote {out}: {len(segments)} segments; {how}", markup=False)


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


def verify(
    path: Path = typer.Argument(..., help="A file Sensorium generated (or any file with a C2PA manifest)."),
    json_out: bool = typer.Option(False, "--json", help="Print the verdict and manifest as JSON."),
):
    """Check a file's provenance. Exit status: 0 valid, 3 tampered, 4 unsigned, 5 signed by a key not trusted here."""
    from ..provenance.verification import verify as check

    if not path.is_file():
        fail(f"{path}: no such file", EXIT_USAGE)
    try:
        verdict = check(path)
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    if json_out:
        print(json.dumps(verdict.as_dict(), indent=2))
    else:
        console = make_console()
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


