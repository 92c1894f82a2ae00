"""Commands that look after a collection's files: the roots they are stored relative to, and forgetting.

Registered on the `sensorium` app by `sensorium.cli` (`roots` as a group of its own).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from ..errors import SensoriumError
from .console import EXIT_ERROR, EXIT_USAGE, CollectionOpt, fail, make_console, note


def forget(
    paths: list[Path] = typer.Argument(..., help="Files, or folders (every file under them), to forget."),
    collection: Path = CollectionOpt,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Remove files from the collection with everything made from them: text, vectors, thumbnails."""
    from ..collection import Collection

    if not (collection / "collection.json").exists():
        fail(f"{collection}: no collection here", EXIT_USAGE)
    try:
        result = Collection(collection).forget(paths)
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    if not result["items"]:
        fail(f"{', '.join(str(p) for p in paths)}: nothing stored for that in {collection}", EXIT_USAGE)
    if json_out:
        print(json.dumps(result, indent=2))
    else:
        make_console().print(f"forgot {result['items']} files: {result['segments']} segments and "
                         f"{result['thumbnails']} thumbnails; their text and vectors are overwritten in the "
                         "collection's files", markup=False)
    if not result["log_emptied"]:
        note(["another process was reading the collection, so its write-ahead log still holds old pages; "
               "they are overwritten at the next write or when that process stops"])
    if result["still_on_disk"]:
        note([f"{result['still_on_disk']} of these files are still on disk: the next `sensorium index` of their "
               "folder adds them again (move or delete them first)"])




roots_app = typer.Typer(no_args_is_help=True, help="The folders a collection's files are stored relative to: "
                        "list them, or point one at the place its media moved to (nothing is re-embedded).")


def print_roots(console, roots: list[dict]) -> None:
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
    from ..collection import Collection

    if not (collection / "collection.json").exists():
        fail(f"{collection}: no collection here", EXIT_USAGE)
    col = Collection(collection)
    roots = col.roots()
    if json_out:
        print(json.dumps(roots, indent=2))
    else:
        print_roots(make_console(), roots) if roots else make_console().print("no roots (nothing indexed yet)")
    note(col.root_notices())


@roots_app.command("set")
def roots_set(
    name: str = typer.Argument(..., help="The root's name (see `sensorium roots list`)."),
    folder: Path = typer.Argument(..., help="Where its files are now."),
    collection: Path = CollectionOpt,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Point root NAME at FOLDER, where its media now are; a new NAME names a root there."""
    from ..collection import Collection

    if not (collection / "collection.json").exists():
        fail(f"{collection}: no collection here", EXIT_USAGE)
    if not folder.is_dir():
        fail(f"{folder}: not a folder", EXIT_USAGE)
    try:
        col = Collection(collection)
        result = col.set_root(name, folder)
    except (ValueError, SensoriumError) as error:
        fail(str(error), EXIT_USAGE if isinstance(error, ValueError) else EXIT_ERROR)
    if json_out:
        print(json.dumps(result, indent=2))
        return
    console = make_console()
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
        note([f"{result['sampled'] - result['found']} of {result['sampled']} sampled files are not in {result['to']} "
               "with their recorded size; check the folder, then `sensorium index` it to bring changes in"])



def layout(
    space: str = typer.Argument(None, help="A vector space (see the list this prints without arguments)."),
    kind: str = typer.Argument(None, metavar="LAYOUT", help="hnsw (default: fastest, ~1.7 KB/vector) or compressed "
                               "(IVF-PQ codes in memory, float32 on disk: ~210 bytes/vector of memory, for 10M+)."),
    collection: Path = CollectionOpt,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Show each vector space's ANN layout, or keep SPACE's vectors in LAYOUT (rebuilt from the catalog).

    A running `sensorium serve` keeps the layout it opened: restart it after a switch."""
    from ..collection import Collection
    from ..index.layouts import file_bytes

    if not (collection / "collection.json").exists():
        fail(f"{collection}: no collection here", EXIT_USAGE)
    col = Collection(collection)
    if space is None or kind is None:
        if space is not None:
            fail("give a LAYOUT after the SPACE (hnsw or compressed), or neither to list them", EXIT_USAGE)
        rows = [{"space": name, "layout": chosen.value, "vectors": len(col.store(name)),
                 "bytes": file_bytes(col.dir / "vectors", name, chosen)} for name, chosen in col.layouts().items()]
        if json_out:
            print(json.dumps(rows, indent=2))
            return
        console = make_console()
        for row in rows:
            console.print(f"{row['space']:12s} {row['layout']:10s} {row['vectors']:10,d} vectors "
                          f"{row['bytes'] / 2**20:10.1f} MiB", markup=False)
        return
    started = time.perf_counter()
    try:
        result = col.set_layout(space, kind)
    except SensoriumError as error:
        fail(str(error), EXIT_USAGE)
    result["seconds"] = round(time.perf_counter() - started, 2)
    if json_out:
        print(json.dumps(result, indent=2))
        return
    change = "already" if result["was"] == result["layout"] else f"{result['was']} ->"
    make_console().print(f"{space}: {change} {result['layout']}, {result['vectors']:,d} vectors, "
                         f"{result['bytes'] / 2**20:.1f} MiB of files ({result['seconds']} s)", markup=False)
