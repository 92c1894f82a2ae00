"""What every command shares: consoles, one-line errors with an exit status, notes, progress bars.

Exit status: 0 success; 1 an error (message on one line); 2 a usage or query error; each command
documents any status of its own (`index` 3 when a file failed, `verify` 3-5 by verdict).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FILES_FAILED = 3

CollectionOpt = typer.Option(..., "--collection", "-c", help="Folder holding the collection's index.")


def make_console(stderr: bool = False):
    """Markup off unless a call asks for it (`markup=True`): paths, captions and transcripts are
    printed as written, even a folder named "trip [draft]"."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False)


def fail(message: str, code: int) -> None:
    from rich.markup import escape

    # escaped: a message naming `sensorium[ray]` or a path with brackets must print as written
    make_console(stderr=True).print(f"[red]error:[/red] {escape(message)}", markup=True)
    raise typer.Exit(code)


def note(messages: list[str]) -> None:
    """Things the user should know that are not errors (a root re-attached or missing), on stderr."""
    console = make_console(stderr=True)
    for message in messages:
        console.print("[yellow]note:[/yellow] ", markup=True, end="")
        console.print(message, markup=False)



_BARS = {}


def print_failed(console, failed: list[tuple[str, str]]) -> None:
    """One line per file that could not be read or embedded, after a run's summary."""
    for path, reason in failed:
        console.print("  [yellow]failed[/yellow] ", markup=True, end="")
        console.print(f"{path}: {reason}", markup=False)


def progress_bar(label: str = "indexing"):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[name]}", style="dim", markup=False), console=make_console(stderr=True),
                        transient=True)
    progress.start()
    task = progress.add_task(label, total=None, name="")
    _BARS["progress"] = progress

    def update(done: int, total: int, path: str = "") -> None:
        progress.update(task, completed=done, total=total, name=Path(path).name if path else "")

    return update


@contextmanager
def failing_cleanly() -> Iterator[None]:
    """Around a command's work: a QueryError ends it with status 2, any other SensoriumError with 1,
    each as one line; the progress display is stopped however the work ends."""
    from ..errors import QueryError, SensoriumError

    try:
        yield
    except QueryError as error:
        fail(str(error), EXIT_USAGE)
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    finally:
        stop_progress()


def stop_progress() -> None:
    progress = _BARS.pop("progress", None)
    if progress is not None:
        progress.stop()



def stage_progress():
    """A (stage, done, total) callback that shows a bar per stage, in the running display if there
    is one (e.g. below the "classifying" bar); also what `sensorium.progress.reporting` takes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = _BARS.get("progress")
    if progress is None:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=make_console(stderr=True), transient=True)
        progress.start()
        _BARS["progress"] = progress
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total, name="")
        progress.update(tasks[stage], completed=done, total=total)

    return update


