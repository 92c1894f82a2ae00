"""Sound-by-example on real non-speech recordings: drum and percussion hits from 14 drum kits.

    make bench-data    # or: apt-get install hydrogen-drumkits (Debian, GPL-2, about 140 MB)
    .venv/bin/python -m benchmarks.quality.drum_sounds

Every sample a kit's `drumkit.xml` lists becomes a native audio vector (`Experts().sound`: the
Whisper base encoder, mean-pooled over the frames that hold sound, L2-normalised; the vectors a
collection stores for every recording). The instrument's name in the kit sorts it into one of a few
families (kick, snare, hi-hat, tom, cymbal, clap, cowbell); instruments that fit none are left out.
Each sample then queries the samples of the OTHER kits by cosine (the same instrument's velocity
layers in its own kit would make it trivial): R@1 is how often the top hit is of the same family,
and mAP the mean average precision of that ranking. A majority-class guess gives the chance row.
Files the readers cannot open (this package's .aiff kit) are counted and skipped.
"""
from __future__ import annotations

import re
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
KITS = Path("/usr/share/hydrogen/data/drumkits")

# checked in this order: "ride bell" is a cymbal, "cowbell" a cowbell, "bass drum" a kick
FAMILIES = (
    ("cowbell", r"cow ?bell"),
    ("kick", r"kick|bass ?drum|\bbd\b|bassdrum"),
    ("snare", r"snare|\bsd\b"),
    ("hi-hat", r"hi-?hat|\bhh\b|\bhat\b|hat "),
    ("tom", r"\btom|floor ?tom"),
    ("cymbal", r"crash|ride|china|splash|cymbal"),
    ("clap", r"clap"),
)


def family(name: str) -> str | None:
    lowered = name.lower().replace("_", " ")
    for label, pattern in FAMILIES:
        if re.search(pattern, lowered):
            return label
    return None


def kit_samples(kits: Path) -> list[tuple[str, str, Path]]:
    """(kit, family, file) for every layer of every instrument whose name names a family."""
    out = []
    for xml in sorted(kits.glob("*/drumkit.xml")):
        root = ElementTree.parse(xml).getroot()
        namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        for instrument in root.iter(f"{namespace}instrument"):
            name = instrument.findtext(f"{namespace}name") or ""
            label = family(name)
            if label is None:
                continue
            files = [e.text for e in instrument.iter(f"{namespace}filename") if e.text]
            for file in dict.fromkeys(files):
                path = xml.parent / file
                if path.is_file():
                    out.append((xml.parent.name, label, path))
    return out


def average_precision(relevant: np.ndarray) -> float:
    hits = np.flatnonzero(relevant)
    if hits.size == 0:
        return 0.0
    return float(np.mean(np.arange(1, hits.size + 1) / (hits + 1)))


def main() -> None:
    if not KITS.is_dir():
        sys.exit(f"{KITS}: not found; install the Debian package hydrogen-drumkits")
    from sensorium.errors import SensoriumError
    from sensorium.experts import Experts
    from sensorium.readers import read

    samples = kit_samples(KITS)
    experts = Experts()
    kept, clips, unreadable = [], [], 0
    began = time.perf_counter()
    for kit, label, path in samples:
        try:
            payload = read(path)
        except SensoriumError:
            unreadable += 1
            continue
        if payload.samples.size == 0 or float(np.abs(payload.samples).max()) < 1e-4:
            continue  # an empty or silent placeholder sample
        kept.append((kit, label))
        clips.append(payload.samples)
    seconds = sum(len(c) for c in clips) / 16000
    vectors = np.concatenate([experts.sound.embed(clips[i:i + 16]) for i in range(0, len(clips), 16)])
    took = time.perf_counter() - began
    kits = np.array([k for k, _ in kept])
    labels = np.array([f for _, f in kept])
    print(f"{len(kept)} samples from {len(set(kits))} kits ({seconds:.0f} s of audio) embedded in {took:.0f} s; "
          f"{unreadable} unreadable files skipped")

    scores = vectors @ vectors.T
    print("| family | samples | kits | R@1 (other kits) | mAP (other kits) |")
    print("|---|---|---|---|---|")
    top1, aps = np.zeros(len(kept)), np.zeros(len(kept))
    for i in range(len(kept)):
        gallery = np.flatnonzero(kits != kits[i])
        order = gallery[np.argsort(-scores[i, gallery])]
        top1[i] = labels[order[0]] == labels[i]
        aps[i] = average_precision(labels[order] == labels[i])
    for label, _ in FAMILIES:
        rows = labels == label
        if rows.any():
            print(f"| {label} | {rows.sum()} | {len(set(kits[rows]))} | {top1[rows].mean():.3f} | {aps[rows].mean():.3f} |")
    print(f"| **all** | {len(kept)} | {len(set(kits))} | **{top1.mean():.3f}** | **{aps.mean():.3f}** |")
    majority = max(np.mean(labels == label) for label in set(labels))
    print(f"chance: majority family {majority:.3f} (R@1 of always guessing it)")


if __name__ == "__main__":
    main()
