"""`sensorium demo`: build a sample collection from built-in data, index it, tour the searches.

Everything comes from installed packages or is generated here (scikit-image photos, speech
synthesised with espeak-ng, a generated video with a spoken track, a few notes), so the demo runs
on a fresh machine with no network and no shared data.
"""
from __future__ import annotations

from pathlib import Path


def run_tour(directory: str | Path | None = None) -> list[dict]:
    """Build, index and query the sample collection; returns the tour's results (for tests)."""
    from rich.console import Console
    from rich.table import Table

    from ..collection import Collection
    from ..paths import home
    from .sample_data import build_sample_folder

    console = Console(highlight=False)
    root = Path(directory).expanduser().resolve() if directory else home() / "demo"
    media, queries = root / "media", root / "queries"
    queries.mkdir(parents=True, exist_ok=True)

    console.rule("[bold]Sensorium demo")
    console.print(f"building sample media in {media} ...")
    build_sample_folder(media)
    collection = Collection(root / "collection")
    console.print(f"indexing into {collection.dir} (first run loads the models; later runs skip unchanged files)")
    report = collection.index(media, progress=_bar(console))
    console.print(f"  {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
                  f"{report.removed} removed, {len(report.failed)} failed, {report.seconds:.1f} s")
    for path, reason in report.failed:
        console.print(f"  [yellow]failed[/yellow] {path}: {reason}")

    steps = [
        ("text -> image", "a photo of my cat", dict(text="a photo of my cat", modality="image")),
        ("image -> image", "a cropped, mirrored copy of the coffee photo",
         dict(image=_query_image(media, queries), modality="image")),
        ("speech -> video moment", 'spoken: "the rocket launch"',
         dict(audio=_spoken_query(queries, "Show me the rocket launch."), modality="video")),
        ("text -> audio", "when is the team meeting?", dict(text="when is the team meeting", modality="audio")),
        ("text -> note", "how do I make tomato soup", dict(text="how do I make tomato soup", modality="text")),
        ("text -> anything", "astronaut", dict(text="an astronaut in a space suit")),
    ]
    results = []
    for title, shown, query in steps:
        hits = collection.search(k=3, **query)
        table = Table(title=f"{title}: {shown}", title_justify="left", show_lines=False)
        for column in ("#", "score", "modality", "file", "time", "why"):
            table.add_column(column, overflow="fold")
        for rank, hit in enumerate(hits, 1):
            when = f"{hit.start:.1f}-{hit.end:.1f} s" if hit.start is not None else ""
            table.add_row(str(rank), f"{hit.score:.3f}", hit.modality, Path(hit.path).name, when, hit.why)
        console.print(table)
        results.append({"step": title, "hits": [h.as_dict() for h in hits]})

    from ..classification import classify

    table = Table(title="zero-shot classification", title_justify="left")
    for column in ("file", "labels", "best", "p"):
        table.add_column(column)
    for path, labels in _classify_examples(media):
        result = classify(path, labels, experts=collection.experts)
        table.add_row(Path(path).name, ", ".join(labels), result.best, f"{result.labels[0].score:.2f}")
        results.append({"step": "classify", "path": str(path), "best": result.best})
    console.print(table)
    console.print(f"\ntry it yourself:  sensorium search \"a cat\" -c {collection.dir}")
    return results


def _bar(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    state = {}

    def update(done: int, total: int, path: str) -> None:
        if "progress" not in state:
            progress = Progress(TextColumn("  indexing"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=console, transient=True)
            progress.start()
            state["progress"], state["task"] = progress, progress.add_task("index", total=total)
        state["progress"].update(state["task"], completed=done, total=total)
        if done >= total:
            state.pop("progress").stop()

    return update


def _query_image(media: Path, queries: Path) -> Path:
    """A query photo that is not in the collection: a crop of the coffee photo, mirrored."""
    from PIL import Image

    source = next(media.rglob("coffee*"))
    target = queries / "coffee_query.jpg"
    with Image.open(source) as image:
        width, height = image.size
        crop = image.convert("RGB").crop((width // 8, height // 8, width - width // 8, height - height // 8))
        crop.transpose(Image.FLIP_LEFT_RIGHT).save(target, quality=90)
    return target


def _spoken_query(queries: Path, sentence: str) -> Path:
    from ..experts.tts import save_wav, synthesize

    target = queries / "spoken_query.wav"
    save_wav(synthesize(sentence), target)
    return target


def _classify_examples(media: Path) -> list[tuple[Path, list[str]]]:
    examples = []
    cat = next(media.rglob("photos/cat.*"), None)
    if cat is not None:
        examples.append((cat, ["cat", "dog", "car", "coffee"]))
    memo = next((p for p in sorted(media.rglob("*.wav"))), None)
    if memo is not None:
        examples.append((memo, ["groceries", "meeting", "holiday"]))
    return examples

