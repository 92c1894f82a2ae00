"""The `sensorium` command line: index, search, classify, info, models, demo, train, align, evaluate and
serve here; calibrate, speak, transcribe and verify (`commands.trust`), roots and forget
(`commands.collection`), describe and ask (`commands.describe`), embed (`commands.export`), imagine
(`commands.imagine`) and world (`commands.world`) registered from their own modules, with the
helpers all share (`commands.console`).

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

from .commands import agent as agent_commands
from .commands import collection as collection_commands
from .commands import describe as describe_commands
from .commands import export as export_commands
from .commands import imagine as imagine_commands
from .commands import trust as trust_commands
from .commands import world as world_commands
from .commands.console import (EXIT_ERROR, EXIT_FILES_FAILED, EXIT_USAGE, CollectionOpt, fail, failing_cleanly,
                               make_console, note, print_failed, progress_bar, stage_progress, stop_progress)
from .errors import CollectionLockedError, QueryError, SensoriumError
from .experts import SPEECH_IDLE_SECONDS


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Sensorium: offline multimodal search and understanding of your media.")




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
    image_precision: Optional[str] = typer.Option(None, "--image-precision", help="fp32 (default) or int8: "
                                                  "the image classifier quantised (1.6x its photos/s on a CPU with "
                                                  "VNNI); kept for this collection's later runs."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Read and embed in N local processes "
                                          "(or N Ray actors with --ray); this process stays the only writer."),
    ray: bool = typer.Option(False, "--ray", help="Embed in Ray actors on a local Ray started for this run "
                             "(needs pip install 'sensorium\\[ray]')."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Embed in Ray actors on a running "
                                              "cluster instead (e.g. auto, HOST:6379, ray://HOST:10001); "
                                              "the files must be at the same path on every node."),
    space: Optional[Path] = typer.Option(None, "--space", help="Attach this learned space (`sensorium align "
                                         "--out` folder) first; searches then combine it with the bridge."),
    detach_space: bool = typer.Option(False, "--detach-space", help="Remove the attached learned space first."),
):
    """Index FOLDER incrementally: new and changed files are embedded, deleted ones removed."""
    import dataclasses

    from .collection import Collection, stored_experts
    from .experts import ExpertConfig

    if not folder.is_dir():
        fail(f"{folder}: not a folder", EXIT_USAGE)
    if space is not None and detach_space:
        fail("--space and --detach-space: give one or the other", EXIT_USAGE)
    if space is not None and not space.is_dir():
        fail(f"--space {space}: not a folder", EXIT_USAGE)
    for option, given, want_dir in (("--clip", clip, True), ("--text-model", text_model, True),
                                    ("--speech-model", speech_model, True), ("--image-weights", image_weights, False)):
        if given is not None and not (given.is_dir() if want_dir else given.is_file()):
            fail(f"{option} {given}: not a {'folder' if want_dir else 'file'}", EXIT_USAGE)
    # options given change the collection's stored expert settings; the others keep theirs
    changes = {name: str(path.resolve()) for name, path in (("clip_dir", clip), ("text_dir", text_model),
               ("image_weights", image_weights), ("speech_dir", speech_model)) if path is not None}
    changes.update({name: False for name, off in (("ocr", no_ocr), ("people", no_people)) if off})
    if image_precision is not None:
        from .experts.image import PRECISIONS

        if image_precision not in PRECISIONS:
            fail(f"--image-precision {image_precision}: must be one of {', '.join(PRECISIONS)}", EXIT_USAGE)
        changes["image_precision"] = image_precision
    config = dataclasses.replace(stored_experts(collection) or ExpertConfig(), **changes) if changes else None
    try:
        col = Collection(collection, experts=config)
        if detach_space and col.detach_space() and not json_out:
            make_console().print("detached the learned space")
        if space is not None:
            attached = col.attach_space(space, progress=None if json_out else progress_bar("attaching"))
            stop_progress()
            if not json_out:
                info = attached["space"]
                make_console().print(f"attached space {info['id']} ({info['dim']}-d, w = {info['weight']:g}): "
                                 f"{attached['embedded']} segments embedded, {attached['vectors']} learned vectors "
                                 f"in {attached['seconds']:.1f} s")
        report = col.index(folder, progress=None if json_out else progress_bar(), workers=workers,
                           ray=ray_address or ray or None)
        stop_progress()
        note([*col.notices, *report.notices])
        col.notices.clear()
        note(col.root_notices())
        note(col.layout_notices())
    except CollectionLockedError as error:
        fail(str(error), EXIT_ERROR)
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    finally:
        stop_progress()
    if json_out:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        console = make_console()
        console.print(
            f"indexed {report.folder}: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.touched} touched, {report.removed} removed, "
            f"{len(report.failed)} failed in {report.seconds:.1f} s")
        print_failed(console, report.failed)
    if report.failed:
        raise typer.Exit(EXIT_FILES_FAILED)



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
        fail(f"{collection}: no collection here (run `sensorium index FOLDER -c {collection}` first)", EXIT_USAGE)
    try:
        col = Collection(collection)
        hits = col.search(text=query, image=image, audio=audio, modality=modality, k=k)
        note(col.root_notices())
    except QueryError as error:
        fail(str(error), EXIT_USAGE)
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    if json_out:
        print(json.dumps([h.as_dict() for h in hits], indent=2))
        return
    console = make_console()
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
    from .progress import reporting

    profile = None
    if (confidence is not None or abstain or per_label) and calibration is None:
        fail("--confidence, --abstain and --per-label need --calibration FILE (see `sensorium calibrate`)", EXIT_USAGE)
    if calibration is not None:
        from .trust.profile import CalibrationProfile

        from .classification import clean_labels

        try:
            profile = CalibrationProfile.load(calibration)
            profile.order(clean_labels(labels))  # the same label set, checked before any work
        except SensoriumError as error:
            fail(str(error), EXIT_USAGE)

    def trusted(result):
        if profile is None:
            return result
        return calibrated(result, profile, confidence=confidence, abstain=abstain, per_label=per_label)

    if len(paths) == 1 and not together:
        with failing_cleanly(), reporting(None if json_out else stage_progress()):
            result = trusted(run(paths[0], labels, space=space))
        if json_out:
            print(json.dumps(result.as_dict(), indent=2))
            return
        _print_classification(make_console(), result)
        return
    batch = trust_commands.classify_with_progress(paths, labels, space, quiet=json_out, together=together)
    batch.results = [trusted(result) for result in batch.results]
    if json_out:
        print(json.dumps(batch.as_dict(), indent=2))
    else:
        console = make_console()
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
def info(
    collection: Path = CollectionOpt,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Counts of items by modality, and every failure with its file and reason."""
    from .collection import Collection

    if not (collection / "collection.json").exists():
        fail(f"{collection}: no collection here", EXIT_USAGE)
    data = Collection(collection).info()
    if json_out:
        print(json.dumps(data, indent=2))
        return
    console = make_console()
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
    collection_commands.print_roots(console, data["roots"])
    note(data["notices"])


@app.command()
def models(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """The pretrained models Sensorium uses: package, version, checksum, licence, size."""
    from .experts import Experts

    try:
        infos = Experts().models()
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    if json_out:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    from rich.table import Table

    table = Table("model", "task", "package", "version", "licence", "size", "sha256")
    for i in infos:
        table.add_row(i.name, i.task, i.package, i.version, i.licence, f"{i.size_bytes / 1e6:.1f} MB", i.sha256[:16])
    make_console().print(table)


@app.command()
def demo(
    directory: Optional[Path] = typer.Option(None, "--dir", help="Where to build the sample collection."),
):
    """Build a sample collection from built-in data, index it and tour searches in every direction."""
    from .demo.tour import run_tour

    try:
        run_tour(directory)
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)


@app.command()
def train(
    config: Path = typer.Argument(..., help="TOML config (see examples/avmnist.toml)."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints, best weights, metrics.jsonl."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped."),
):
    """Train a multimodal (or unimodal) model from a config; under torchrun, one replica per process. A config
    with an [imagine] table trains a text-to-image model instead (examples/imagine_mnist.toml)."""
    from .training.config import read_toml

    try:
        if "imagine" in read_toml(config):
            from .training.imagining import train_imaginer

            summary = train_imaginer(config, out, resume=resume)
            make_console().print(f"trained {summary['step']} steps over {summary['epoch']} epochs; the model is in "
                                 f"{out / 'model'} (`sensorium imagine PROMPT --model {out}`), samples in "
                                 f"{out / 'samples.png'}", markup=False)
            return
        from .training.runs import run_training

        summary = run_training(config, out, resume=resume)
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if (out / "metrics.jsonl").is_file() else []
    if lines:
        make_console().print(lines[-1], markup=False)
    make_console().print(f"trained {summary['step']} steps over {summary['epoch']} epochs; best epoch "
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

    with failing_cleanly():
        summary = run_align(config, out, progress=None if json_out else stage_progress(), resume=resume)
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
    make_console().print(
        f"trained on {summary['data']['pairs']} pairs in {summary['seconds']:.1f} s "
        f"({summary['trainer']['step']} steps); w = {summary['weight']:g} ({summary['weight_policy']}); "
        f"training-set {scores}; space in {out}", markup=False)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `sensorium train`."),
    data: Optional[Path] = typer.Option(None, "--data", help="Labelled items: a CSV manifest, class folders, an .npz, "
                                        "a Parquet / Arrow file or a `datasets` folder (default: the config's data.test)."),
    noise: Optional[str] = typer.Option(None, "--noise", help="Also score under noise at these levels, comma-"
                                        "separated (MultiBench's are 0,0.1,...,1.0), and with each modality missing."),
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    diagram: Optional[Path] = typer.Option(None, "--diagram", help="Draw a reliability diagram (PNG): "
                                           "confidence before and after the temperature fitted in training."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--fp32", help="Score in bfloat16 (faster on CPUs with AMX or "
                                        "AVX-512 BF16) or float32 (default: the precision the run trained in)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Items scored at once (default: "
                                             "the run's train.batch_size)."),
    as_trained: bool = typer.Option(False, "--as-trained", help="Score with each encoder exactly as trained "
                                    "(default: its fastest form that gives the same outputs on the first batch: "
                                    "batch norm folded into convolutions, channels-last memory)."),
):
    """Accuracy, macro-F1, per-class scores and calibration; with --noise, robustness (noise per modality,
    one modality missing)."""
    from .training.runs import evaluate_run

    try:
        levels = [float(x) for x in noise.split(",") if x.strip()] if noise is not None else None
    except ValueError:
        fail(f"--noise: expected comma-separated numbers, got {noise!r}", EXIT_USAGE)
    try:
        report = evaluate_run(run, data, levels=levels, batch_size=batch_size, diagram=diagram, bf16=bf16,
                              as_trained=as_trained)
        if diagram is not None and "calibration" in report:
            from .provenance.record import input_hash

            trust_commands.sign_generated(diagram, "reliability diagram", [], {"weights": input_hash(run / "best" / "model.safetensors")},
                  {"task": report["calibration"]["task"], "temperature": report["calibration"]["temperature"]})
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    if json_out:
        print(json.dumps(report, indent=1))
        return
    from rich.table import Table

    console = make_console()
    for task, scores in report["tasks"].items():
        console.print(f"{task}: accuracy {scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f} "
                      f"on {report['items']} items ({report['items_per_s']:.0f} items/s"
                      f"{', bf16' if report['bf16'] else ''})", markup=False)
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
    speech_idle_seconds: float = typer.Option(SPEECH_IDLE_SECONDS, "--speech-idle-seconds", min=0,
                                              help="Free the speech model after this many seconds unused "
                                              "(0: keep it): while loaded, its threads slow the service's "
                                              "torch work (drawing 1.2-1.6x); it reloads in under a second."),
):
    """Serve the collection over HTTP: a web page at / and a JSON API under /api/v1."""
    from .serve import run_server
    from .serve.app import is_loopback
    from .serve.security import TOKEN_FILE, normalise_origin

    roots = root or _indexed_folders(collection) or [Path.cwd()]
    for folder in roots:
        if not folder.is_dir():
            fail(f"--root {folder}: not a folder", EXIT_USAGE)
    if not is_loopback(host) and not allow_remote:
        fail(f"--host {host}: listening beyond this machine needs --allow-remote", EXIT_USAGE)
    for origin in allow_origin or []:
        try:
            normalise_origin(origin)
        except ValueError as error:
            fail(f"--allow-origin {error}", EXIT_USAGE)
    err = make_console(stderr=True)
    err.print(f"serving {collection} on http://{host}:{port}/ (roots: {', '.join(str(r) for r in roots)}); "
              f"write token in {Path(collection).expanduser().resolve() / TOKEN_FILE}")
    try:
        run_server(collection, roots, host=host, port=port, allow_remote=allow_remote, thumbnail_mb=thumbnail_mb,
                   allow_origins=allow_origin, calibrations=calibration, speech_idle_seconds=speech_idle_seconds)
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)


def _indexed_folders(collection: Path) -> list[Path]:
    """The collection's roots whose files are there, outermost only: what `serve` offers by default."""
    from .collection import Collection

    if not (collection / "collection.json").exists():
        return []
    with Collection(collection) as col:
        note(col.root_notices())
        present = [Path(root["path"]) for root in col.roots() if not root["missing"]]
    return [folder for folder in present if not any(other != folder and folder.is_relative_to(other) for other in present)]


for command in (trust_commands.calibrate, collection_commands.forget, collection_commands.layout, trust_commands.speak,
                trust_commands.transcribe, trust_commands.verify, describe_commands.describe, describe_commands.ask,
                export_commands.embed, imagine_commands.imagine):
    app.command()(command)
app.add_typer(collection_commands.roots_app, name="roots")
app.add_typer(world_commands.world_app, name="world")
app.add_typer(agent_commands.agent_app, name="agent")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
