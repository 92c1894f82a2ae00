"""`sensorium imagine "PROMPT" --model mnist -o OUT.png`: pictures drawn from words by a text-to-image model.

Registered on the `sensorium` app by `sensorium.cli`.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import SensoriumError
from .console import EXIT_ERROR, EXIT_USAGE, fail, make_console


def imagine(
    prompt: str = typer.Argument(..., help="What to draw, in words: \"a handwritten seven\", \"the digit 7\"."),
    out: Path = typer.Option(..., "-o", "--out", help="A .png file (one picture, or a grid of all of them), or a "
                             "folder (one PNG per picture)."),
    model: str = typer.Option("mnist", "--model", help="A shipped model (mnist, fashion) or the folder `sensorium train` "
                              "wrote for a text-to-image config."),
    n: int = typer.Option(8, "--n", help="How many pictures."),
    steps: int = typer.Option(50, "--steps", help="Sampling steps (DDIM): 10 is fast, 50 a little cleaner."),
    guidance: float = typer.Option(3.0, "--guidance", help="Classifier-free guidance: 0 follows the prompt "
                                   "alone; more follows it harder, with less variety."),
    seed: int = typer.Option(0, "--seed", help="The same seed, prompt and settings draw the same pictures."),
    scale: int = typer.Option(1, "--scale", min=1, max=16, help="Enlarge each pixel to SCALE x SCALE."),
    json_out: bool = typer.Option(False, "--json", help="Print what was drawn as JSON."),
    no_sign: bool = typer.Option(False, "--no-sign", help="Do not sign the pictures (no C2PA provenance manifest)."),
):
    """Draw N pictures of PROMPT; each PNG carries its prompt, seed, model and a checksum of its pixels, and a
    signed C2PA manifest naming the models and the settings (`sensorium verify FILE` checks it)."""
    from ..generation.imagine import load_imaginer, write_png

    grid = out.suffix.lower() == ".png"
    if not grid and out.suffix:
        fail(f"-o {out}: name a .png file or a folder", EXIT_USAGE)
    if not grid and out.exists() and not out.is_dir():
        fail(f"-o {out}: exists and is not a folder", EXIT_USAGE)
    if grid and not out.parent.is_dir():
        fail(f"-o {out}: the folder {out.parent} does not exist", EXIT_USAGE)
    try:
        imaginer = load_imaginer(model)
        drawn = imaginer.imagine(prompt, n=n, steps=steps, guidance=guidance, seed=seed)
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    if drawn.warning:
        make_console(stderr=True).print(f"warning: {drawn.warning}", markup=False)
    if grid:
        pixels = drawn.grid()
        written = [write_png(out, pixels, drawn.metadata(pixels), scale)]
    else:
        out.mkdir(parents=True, exist_ok=True)
        written = [write_png(out / f"imagine-{seed}-{i:02d}.png", picture, drawn.metadata(picture, i), scale)
                   for i, picture in enumerate(drawn.images)]
    signed = "not signed" if no_sign else sign_pictures(written, imaginer, drawn, scale)
    if json_out:
        print(json.dumps({**drawn.as_dict(), "files": [str(p) for p in written], "signed": signed}, indent=2))
        return
    nearest = ", ".join(f"{n.concept} {n.similarity:.2f}" for n in drawn.nearest)
    make_console().print(f"drew {len(drawn.images)} pictures of {drawn.prompt!r} (model {drawn.model}, seed {seed}, "
                         f"{steps} steps, guidance {guidance:g}; nearest concepts: {nearest}) into "
                         f"{out if grid else str(out) + '/'}; {signed}", markup=False)
    if drawn.layouts and drawn.layouts[0]:
        placed = "; ".join(f"{o['colour']} {o['shape']} in box {o['box']}" for o in drawn.layouts[0])
        make_console().print(f"drawn to a planned layout (the first picture's: {placed}; x0 y0 x1 y1 in pixels)",
                             markup=False)


def sign_pictures(paths: list[Path], imaginer, drawn, scale: int) -> str:
    """Sign each written PNG (C2PA, embedded) as made by `imagine`: the models with their SHA-256, the
    prompt's hash, the settings; what was done, in words. A signing error ends the command (status 1)."""
    from ..provenance.record import input_hash
    from .trust import sign_generated

    try:
        models = [info.as_dict() for info in imaginer.info()]
        parameters = {"seed": drawn.seed, "steps": drawn.steps, "guidance": drawn.guidance, "scale": scale,
                      "pictures": len(drawn.images)}
        hows = {sign_generated(path, "imagine", models, {"prompt": input_hash(drawn.prompt)}, parameters)
                for path in paths}
    except SensoriumError as error:
        fail(str(error), EXIT_ERROR)
    return ", ".join(sorted(hows))
