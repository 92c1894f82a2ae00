"""`sensorium embed DIR -o vectors.parquet`: a folder's vectors to Parquet, without a collection.

Registered on the `sensorium` app by `sensorium.cli`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import SensoriumError
from .console import (EXIT_ERROR, EXIT_FILES_FAILED, EXIT_USAGE, fail, make_console, print_failed, progress_bar,
                      stop_progress)


def embed(
    folder: Path = typer.Argument(..., help="A folder (or one file) of photos, recordings, videos and notes."),
    out: Path = typer.Option(..., "-o", "--out", help="The Parquet file to write (path, modality, segment, "
                             "source, start, end, text, space, vector)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Embed in N local processes "
                                          "(or N Ray actors with --ray)."),
    ray: bool = typer.Option(False, "--ray", help="Embed in Ray actors on a local Ray started for this run."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Embed in Ray actors on a running "
                                              "cluster (the files must be at the same path on every node)."),
    image_precision: str = typer.Option("fp32", "--image-precision", help="fp32 or int8 (the image classifier "
                                        "quantised)."),
    no_ocr: bool = typer.Option(False, "--no-ocr", help="Do not read text inside images (faster)."),
    no_people: bool = typer.Option(False, "--no-people", help="Do not look for people in images."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Embed every file under FOLDER into a Parquet table of vectors, for training on them."""
    from ..experts import ExpertConfig
    from ..experts.image import PRECISIONS
    from ..export import export_vectors

    if not folder.exists():
        fail(f"{folder}: no such file or folder", EXIT_USAGE)
    if out.suffix.lower() != ".parquet":
        fail(f"-o {out}: name the output file .parquet", EXIT_USAGE)
    if image_precision not in PRECISIONS:
        fail(f"--image-precision {image_precision}: must be one of {', '.join(PRECISIONS)}", EXIT_USAGE)
    config = ExpertConfig(image_precision=image_precision, ocr=not no_ocr, people=not no_people)
    try:
        report = export_vectors(folder, out, config, workers=workers, ray=ray_address or ray or None,
                                progress=None if json_out else progress_bar("embedding"))
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    finally:
        stop_progress()
    if json_out:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        console = make_console()
        console.print(f"wrote {report.rows} vectors ({report.segments} segments of {report.files - len(report.failed)} "
                      f"files) to {report.out}; {len(report.failed)} failed in {report.seconds:.1f} s", markup=False)
        print_failed(console, report.failed)
    if report.failed:
        raise typer.Exit(EXIT_FILES_FAILED)
