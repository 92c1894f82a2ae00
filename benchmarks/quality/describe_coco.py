"""`describe` on COCO-mini photos: CHAIR_i, CHAIR_s and object recall (Rohrbach et al. 2018).

    .venv/bin/python -m benchmarks.quality.describe_coco [--data DIR] [--cache FILE] [--grid]

80 COCO train2017 photos; truth = the categories of their instance annotations ("strict") and,
as CHAIR does, also the categories their 5 human captions name ("+captions"). A described photo's
mentions are the nouns of its findings mapped to the 80 categories (`coco_synonyms.category_of`);
nouns outside COCO's 80 (a "seashore", a "plate") are counted in `outside` but are not judged.
CHAIR_i = hallucinated mentions / mentions, CHAIR_s = sentences with one / sentences,
recall = truth categories mentioned / truth categories (strict), per photo summed.

The photos are split by id: the first 40 are the dev half (thresholds were chosen on it with
--grid), the last 40 the held-out half, reported separately; sealed photos check it again.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.quality.coco_retrieval import DEFAULT_DATA, gather_evidence
from benchmarks.quality.coco_synonyms import caption_categories, category_of
from sensorium.generation import Certainty, DescribeOptions, describe_evidence, load_concepts
from sensorium.generation.describe import OCR, VIEW_RULES
from sensorium.space.image_bridge import ImageBridge

ROOT = Path(__file__).resolve().parents[2]
DEV_PHOTOS = 40


def load_truth(data: Path) -> tuple[list[str], list[np.ndarray], list[set[str]], list[set[str]]]:
    """(file names, pixels, instance categories, caption categories) per photo, sorted by id."""
    from PIL import Image

    instances = json.loads((data / "instances_train2017.json").read_text())
    captions = json.loads((data / "captions_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in instances["categories"]}
    images = sorted(instances["images"], key=lambda im: im["id"])
    strict = {im["id"]: set() for im in images}
    for ann in instances["annotations"]:
        strict[ann["image_id"]].add(names[ann["category_id"]])
    said = {im["id"]: set() for im in images}
    for ann in captions["annotations"]:
        if ann["image_id"] in said:
            said[ann["image_id"]] |= caption_categories(ann["caption"])
    pixels = [np.asarray(Image.open(data / "images" / im["file_name"]).convert("RGB")) for im in images]
    return ([im["file_name"] for im in images], pixels, [strict[im["id"]] for im in images],
            [said[im["id"]] for im in images])


def chair(descriptions, strict: list[set[str]], loose: list[set[str]], facts_only: bool = False) -> dict:
    """CHAIR over the nouns each sentence mentions; `facts_only`: only what it states without "probably"."""
    mentions = wrong_strict = wrong_loose = outside = 0
    bad_strict = bad_loose = abstained = 0
    hit = total_truth = 0
    for description, truth, more in zip(descriptions, strict, loose):
        nouns = [f.noun for f in description.findings if f.expert != OCR
                 and (not facts_only or f.certainty is Certainty.SURE)]
        said = {category_of(noun) for noun in nouns}
        outside += sum(1 for noun in nouns if category_of(noun) is None)
        said.discard(None)
        mentions += len(said)
        wrong = said - truth
        wrong_strict += len(wrong)
        wrong_loose += len(wrong - more)
        bad_strict += bool(wrong)
        bad_loose += bool(wrong - more)
        abstained += not nouns
        hit += len(said & truth)
        total_truth += len(truth)
    n = len(descriptions)
    return {"photos": n, "mentions": mentions, "outside": outside,
            "chair_i": wrong_strict / max(mentions, 1), "chair_s": bad_strict / n,
            "chair_i_captions": wrong_loose / max(mentions, 1), "chair_s_captions": bad_loose / n,
            "recall": hit / max(total_truth, 1), "cannot_tell": abstained / n}


def describe_all(evidence, bridge_combine, options):
    table = load_concepts()
    return [describe_evidence(e, bridge_combine, options, table) for e in evidence]


def row(name: str, scores: dict) -> str:
    return (f"| {name} | {scores['photos']} | {scores['mentions']} | {scores['chair_i']:.3f} | {scores['chair_s']:.3f} "
            f"| {scores['chair_i_captions']:.3f} | {scores['chair_s_captions']:.3f} | {scores['recall']:.3f} "
            f"| {scores['outside']} | {scores['cannot_tell']:.3f} |")


HEADER = ("| rule | photos | COCO mentions | CHAIR_i | CHAIR_s | CHAIR_i (+captions) | CHAIR_s (+captions) "
          "| recall | other nouns | nothing said |\n|---|---|---|---|---|---|---|---|---|---|")


def speed_table(bridge: ImageBridge, pixels: list[np.ndarray]) -> str:
    """Photos/s of Describer.describe (classifier on 5 views, people, gated OCR, composing) after a warm-up."""
    import torch

    from sensorium.generation import Describer

    describer = Describer(bridge)
    describer.describe(pixels[0])
    lines = ["\n| threads | photos | photos/s | ms/photo |", "|---|---|---|---|"]
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        started = time.perf_counter()
        for picture in pixels:
            describer.describe(picture)
        seconds = time.perf_counter() - started
        lines.append(f"| {threads} | {len(pixels)} | {len(pixels) / seconds:.2f} | {seconds / len(pixels) * 1000:.0f} |")
    torch.set_num_threads(before)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=ROOT / ".benchmarks-cache" / "coco-evidence.npz",
                        help="npz file to keep/reuse the experts' outputs")
    parser.add_argument("--grid", action="store_true", help="also print the threshold grid on the dev half")
    parser.add_argument("--speed", type=int, default=16, help="photos to time describe on, end to end "
                        "(experts included) with 1 and 2 threads; 0 = skip")
    parser.add_argument("--examples", type=int, default=6, help="sentences to print from the held-out half")
    args = parser.parse_args(argv)
    if not (args.data / "instances_train2017.json").is_file():
        print(f"skipped: no COCO-mini at {args.data}")
        return 0
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    files, pixels, strict, loose = load_truth(args.data)
    bridge = ImageBridge()
    evidence = gather_evidence(bridge, pixels, args.cache)["grid"]
    combine = bridge.labels.combine_probs
    halves = {"dev (first 40)": slice(0, DEV_PHOTOS), "held-out (last 40)": slice(DEV_PHOTOS, None)}
    if args.grid:
        for name in halves:
            print(f"\nthreshold curve on the {name} half: every mention at or above t stated\n" + HEADER)
            part = halves[name]
            for views in VIEW_RULES:
                for threshold in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                    options = DescribeOptions(sure=threshold, probable=threshold, views=views)
                    scores = chair(describe_all(evidence[part], combine, options), strict[part], loose[part])
                    print(row(f"{views}, t = {threshold}", scores))
    options = DescribeOptions()
    started = time.perf_counter()
    descriptions = describe_all(evidence, combine, options)
    compose_ms = (time.perf_counter() - started) / len(evidence) * 1000
    print(f"\ndescribe with the shipped thresholds (sure {options.sure}, probably {options.probable}, "
          f"views {options.views}); composing {compose_ms:.2f} ms/photo after the experts\n" + HEADER)
    for facts_only, what in ((True, "stated as fact"), (False, "all mentions, 'probably' ones too")):
        for name, part in halves.items():
            print(row(f"{name}: {what}", chair(descriptions[part], strict[part], loose[part], facts_only)))
    if args.speed:
        print(speed_table(bridge, pixels[: args.speed]))
    print("\nheld-out examples")
    for i in range(DEV_PHOTOS, min(len(files), DEV_PHOTOS + args.examples)):
        print(f"- {files[i]}: {descriptions[i].sentence}  [truth: {', '.join(sorted(strict[i]))}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
