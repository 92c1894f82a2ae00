"""Tampering with signed artefacts: how many single-bit flips `verify` catches, and false alarms.

    .venv/bin/python -m benchmarks.trust.provenance [--trials 1000] [--clean 100]

Artefacts, made and signed as the commands make them (a fresh signing identity in a temporary
config folder): speech from `speak` (WAV, C2PA embedded), a reliability diagram (PNG, embedded),
a picture drawn by `imagine` (PNG with its text chunks, embedded), a transcript (TXT, signed sidecar). For each, `--trials` random single-bit flips anywhere in the
file, and as many inside its manifest (the C2PA manifest store, or the sidecar), each verified on
the signing machine (C2PA, the strict manifest checks and the signer's ledger) and as another
machine trusting the same authority would (C2PA and the strict checks, no ledger). False alarms: `--clean` freshly signed files, untouched.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np


def make_artefacts(folder: Path, number: int = 0) -> dict[str, tuple[Path, Path | None]]:
    """name -> (the file, the sidecar or None)."""
    from sensorium.experts.tts import info, save_wav, synthesize
    from sensorium.provenance.record import generation, input_hash
    from sensorium.provenance.signing import sign_file
    from sensorium.trust.diagram import reliability_diagram

    text = f"Signed sentence number {number} for the tampering benchmark."
    wav = save_wav(synthesize(text), folder / f"speech-{number}.wav")
    sign_file(wav, generation("speak", [info().as_dict()], {"text": input_hash(text)}, {"voice": "en-us"}))
    rng = np.random.default_rng(number)
    probs = rng.dirichlet(np.ones(5), 300)
    png = reliability_diagram(folder / f"diagram-{number}.png", [("before", probs, rng.integers(0, 5, 300))])
    sign_file(png, generation("reliability diagram", [], {"calibration": input_hash(text)}, {}))
    txt = folder / f"transcript-{number}.txt"
    txt.write_text(f"[00:00:00.000] {text}\n")
    sidecar = sign_file(txt, generation("transcribe", [], {"recording": input_hash(wav)}, {"language": "en"}))
    from sensorium.commands.imagine import sign_pictures
    from sensorium.generation.imagine import load_imaginer, write_png

    imaginer = load_imaginer("mnist")
    drawn = imaginer.imagine(f"the digit {number % 10}", n=1, steps=4, seed=number)
    picture = write_png(folder / f"picture-{number}.png", drawn.images[0], drawn.metadata(drawn.images[0], 0), scale=4)
    sign_pictures([picture], imaginer, drawn, scale=4)
    return {"speech (WAV, embedded)": (wav, None), "diagram (PNG, embedded)": (png, None),
            "picture from `imagine` (PNG, embedded)": (picture, None), "transcript (TXT, sidecar)": (txt, sidecar)}


def manifest_region(data: bytes) -> tuple[int, int]:
    """[start, end) of the JUMBF manifest store in an embedded file."""
    at = data.find(b"jumb") - 4
    size = int.from_bytes(data[at:at + 4], "big")
    return at, at + size


def trial(path: Path, target: Path, start: int, end: int, rng: random.Random) -> str:
    """Flip one random bit of `target` in [start, end), verify `path`, restore; returns the verdict."""
    from sensorium.provenance.verification import verify

    original = target.read_bytes()
    data = bytearray(original)
    data[rng.randrange(start, end)] ^= 1 << rng.randrange(8)
    target.write_bytes(bytes(data))
    try:
        return verify(path).state
    finally:
        target.write_bytes(original)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--clean", type=int, default=100)
    args = parser.parse_args()
    from sensorium.provenance.verification import TAMPERED, VALID, verify

    with tempfile.TemporaryDirectory(prefix="provenance-") as temp:
        temp = Path(temp)
        os.environ["SENSORIUM_CONFIG"] = str(temp / "signer")
        artefacts = make_artefacts(temp)
        elsewhere = temp / "elsewhere"  # trusts the same authority, has no ledger
        (elsewhere / "provenance").mkdir(parents=True)
        shutil.copytree(temp / "signer" / "provenance" / "trusted", elsewhere / "provenance" / "trusted")
        rng = random.Random(0)
        print("| artefact | bytes flipped | trials | detected on the signing machine | detected elsewhere (no ledger) |")
        print("|---|---|---:|---:|---:|")
        for name, (path, sidecar) in artefacts.items():
            data = path.read_bytes()
            regions = [("anywhere in the file", path, 0, len(data))]
            if sidecar is None:
                start, end = manifest_region(data)
                regions.append((f"in the manifest store ({end - start} of {len(data)} bytes)", path, start, end))
            else:
                regions.append((f"anywhere in the sidecar ({len(sidecar.read_bytes())} bytes)", sidecar, 0,
                                len(sidecar.read_bytes())))
            for label, target, start, end in regions:
                here = there = 0
                for _ in range(args.trials):
                    state = rng.getstate()
                    os.environ["SENSORIUM_CONFIG"] = str(temp / "signer")
                    here += trial(path, target, start, end, rng) == TAMPERED
                    rng.setstate(state)  # the same flip, judged elsewhere
                    os.environ["SENSORIUM_CONFIG"] = str(elsewhere)
                    there += trial(path, target, start, end, rng) == TAMPERED
                print(f"| {name} | {label} | {args.trials} | **{here / args.trials:.1%}** ({here}) | "
                      f"{there / args.trials:.1%} ({there}) |", flush=True)
        os.environ["SENSORIUM_CONFIG"] = str(temp / "signer")
        clean = temp / "clean"
        clean.mkdir()
        alarms = checked = 0
        for number in range(1, args.clean + 1):
            for path, _ in make_artefacts(clean, number).values():
                checked += 1
                alarms += verify(path).state != VALID
        print(f"\nfalse alarms: {alarms} of {checked} untouched signed files ({args.clean} of each kind)")


if __name__ == "__main__":
    main()
