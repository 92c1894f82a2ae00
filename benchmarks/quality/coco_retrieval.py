"""COCO-mini cross-modal retrieval through the label bridge (no training on these photos).

    .venv/bin/python -m benchmarks.quality.coco_retrieval [--data DIR] [--cache FILE] [--quick]

80 COCO train2017 photos, their 400 captions. Text->image: each caption queries the 80 photos,
R@1/5/10 = share of captions whose photo ranks in the top 1/5/10. Image->text: each photo queries
the 400 captions, R@1/5 = share of photos with one of their own 5 captions in the top 1/5.
Every row adds one step to the row above (an ablation), starting from textbook ConSE.
The experts run once; each row only redoes the cheap vector arithmetic.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from sensorium.experts.image import ImageExpert
from sensorium.experts.ocr import OcrLine
from sensorium.experts.person import Box
from sensorium.experts.text import TextEncoder
from sensorium.space.image_bridge import DEFAULT_CONFIG, ImageBridge, ImageEvidence
from sensorium.space.label_bridge import TEMPLATES, BridgeConfig

ROOT = Path(__file__).resolve().parents[2]

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "coco_mini"


def load_coco(data: Path, limit: int | None = None):
    from PIL import Image

    meta = json.loads((data / "captions_train2017.json").read_text())
    images = sorted(meta["images"], key=lambda im: im["id"])[:limit]
    index = {im["id"]: i for i, im in enumerate(images)}
    pixels = [np.asarray(Image.open(data / "images" / im["file_name"]).convert("RGB")) for im in images]
    captions, owner = [], []
    for ann in sorted(meta["annotations"], key=lambda a: a["id"]):
        if ann["image_id"] in index:
            captions.append(ann["caption"].strip())
            owner.append(index[ann["image_id"]])
    return pixels, captions, np.asarray(owner)


def recall_table(image_vectors: np.ndarray, query_vectors: np.ndarray, owner: np.ndarray) -> dict[str, float]:
    scores = query_vectors @ image_vectors.T  # (captions, images)
    own = scores[np.arange(len(owner)), owner]
    t2i_rank = (scores > own[:, None]).sum(axis=1)  # 0 = first
    i2t_rank = []
    for image in range(len(image_vectors)):
        column = scores[:, image]
        best_own = column[owner == image].max()
        i2t_rank.append(int((column > best_own).sum()))
    i2t_rank = np.asarray(i2t_rank)
    return {
        "t2i_r1": float((t2i_rank < 1).mean()), "t2i_r5": float((t2i_rank < 5).mean()),
        "t2i_r10": float((t2i_rank < 10).mean()),
        "i2t_r1": float((i2t_rank < 1).mean()), "i2t_r5": float((i2t_rank < 5).mean()),
    }


def gather_evidence(bridge: ImageBridge, pixels: list[np.ndarray], cache: Path | None) -> dict[str, list[ImageEvidence]]:
    """Evidence per crop layout (and for the direct-resize variant), from cache when allowed."""
    if cache is not None and cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        faces = json.loads(str(stored["faces"]))
        ocr = json.loads(str(stored["ocr"]))
        result = {}
        for layout in ("grid", "five", "direct"):
            result[layout] = [
                ImageEvidence(stored[f"{layout}_probs"][i], stored[f"{layout}_native"][i],
                              [Box(**b) for b in faces[i]], float(stored["clothing"][i]),
                              [OcrLine(l["text"], l["score"], tuple(l["box"])) for l in ocr[i]])
                for i in range(len(pixels))
            ]
        return result
    started = time.perf_counter()
    result = {"grid": bridge.observe(pixels, "grid")}
    seconds = time.perf_counter() - started
    print(f"experts (classifier x5 views, faces, gated OCR): {len(pixels) / seconds:.2f} images/s", flush=True)
    base = result["grid"]
    for layout, expert in (("five", bridge.expert), ("direct", ImageExpert(resize="direct"))):
        outs = expert.run_crops(pixels, "five" if layout == "five" else "full")
        result[layout] = [ImageEvidence(o.probs, o.features[0], b.faces, b.clothing, b.ocr_lines)
                          for o, b in zip(outs, base)]
    if cache is not None:
        arrays = {}
        for layout, items in result.items():
            arrays[f"{layout}_probs"] = np.stack([e.view_probs for e in items])
            arrays[f"{layout}_native"] = np.stack([e.native for e in items])
        arrays["clothing"] = np.asarray([e.clothing for e in base])
        arrays["faces"] = np.asarray(json.dumps([[b.__dict__ for b in e.faces] for e in base]))
        arrays["ocr"] = np.asarray(json.dumps([[l.__dict__ for l in e.ocr_lines] for e in base]))
        np.savez(cache, **arrays)
    return result


def ablation_rows() -> list[tuple[str, BridgeConfig, str]]:
    """(label, config, evidence layout). Cumulative: each row keeps the previous row's choices."""
    plain = BridgeConfig.plain()
    rows = [("plain ConSE: top-10, 'a photo of a {first synset name}'", plain, "grid")]
    step = replace(plain, templates=TEMPLATES)
    rows.append(("+ 6 prompt templates averaged", step, "grid"))
    step = replace(step, clean=True, names_per_class=2)
    rows.append(("+ cleaned names, 2 synonyms per class", step, "grid"))
    step = replace(step, hypernym_weight=1.0)
    rows.append(("+ hypernyms (dog, car, kitchen ...) weight 1", step, "grid"))
    step = replace(step, crops="grid", crop_weight=0.5)
    rows.append(("+ full image + 4 quadrant crops (weight 0.5)", step, "grid"))
    step = replace(step, power=0.7, top_k=20)
    rows.append(("+ flatter weights: power 0.7, top-20", step, "grid"))
    step = replace(step, person_weight=0.25)
    rows.append(("+ person term 0.25 (faces + clothing) = DEFAULT_CONFIG", step, "grid"))
    assert step == DEFAULT_CONFIG, "the last cumulative row must be the shipped configuration"
    # single-factor variations around the default: the options that were tried and not kept
    rows.append(("  variant: + pseudo-caption embedding 1.0", replace(DEFAULT_CONFIG, caption_weight=1.0), "grid"))
    rows.append(("  variant: + pseudo-caption embedding 0.5", replace(DEFAULT_CONFIG, caption_weight=0.5), "grid"))
    rows.append(("  variant: + re-centering (mean class vector removed)", replace(DEFAULT_CONFIG, center=True), "grid"))
    rows.append(("  variant: full view only (no crops)", replace(DEFAULT_CONFIG, crops="full"), "grid"))
    rows.append(("  variant: full view, direct 224x224 resize instead of centre crop",
                 replace(DEFAULT_CONFIG, crops="full"), "direct"))
    rows.append(("  variant: 5 crops (4 corners + centre) instead of quadrants", replace(DEFAULT_CONFIG, crops="five"), "five"))
    rows.append(("  variant: crop weight 0.7", replace(DEFAULT_CONFIG, crop_weight=0.7), "grid"))
    for k in (5, 10, 50):
        rows.append((f"  variant: top-k {k}", replace(DEFAULT_CONFIG, top_k=k), "grid"))
    for power in (0.5, 1.0):
        rows.append((f"  variant: power {power}", replace(DEFAULT_CONFIG, power=power), "grid"))
    for weight in (0.5, 2.0):
        rows.append((f"  variant: hypernym weight {weight}", replace(DEFAULT_CONFIG, hypernym_weight=weight), "grid"))
    for weight in (0.0, 0.5):
        rows.append((f"  variant: person weight {weight}", replace(DEFAULT_CONFIG, person_weight=weight), "grid"))
    rows.append(("  variant: + OCR text in the vector, weight 0.3 (gated)", replace(DEFAULT_CONFIG, ocr_weight=0.3), "grid"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=None, help="npz file to keep/reuse the experts' outputs")
    parser.add_argument("--quick", action="store_true", help="main rows only, no variants")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    if not (args.data / "captions_train2017.json").is_file():
        print(f"skipped: COCO-mini not found at {args.data}")
        return 0

    pixels, captions, owner = load_coco(args.data)
    print(f"COCO-mini: {len(pixels)} photos, {len(captions)} captions")
    encoder = TextEncoder()
    bridge = ImageBridge(encoder=encoder, ocr="auto")
    evidence = gather_evidence(bridge, pixels, args.cache)
    print(f"people: {sum(e.people > 0 for e in evidence['grid'])} photos with a face or clothing cue; "
          f"OCR ran text on {sum(bool(e.ocr_lines) for e in evidence['grid'])} photos")
    caption_vectors = encoder.encode(captions)

    header = f"| {'configuration':<66} | T2I R@1 | R@5 | R@10 | I2T R@1 | R@5 |"
    lines = [header, "|" + "-" * 68 + "|---|---|---|---|---|"]
    print(header)
    rows = ablation_rows()
    if args.quick:
        rows = [row for row in rows if not row[0].startswith("  variant")]
    from sensorium.space.label_bridge import LabelBridge

    for label, config, layout in rows:
        bridge.config = config
        bridge.labels = LabelBridge(encoder, bridge.expert.class_names, config)
        images = np.stack([bridge.vector(e) for e in evidence[layout]])
        queries = caption_vectors
        if config.center:
            queries = bridge.embed_query(captions)
        m = recall_table(images, queries, owner)
        line = (f"| {label:<66} | {m['t2i_r1']:.3f} | {m['t2i_r5']:.3f} | {m['t2i_r10']:.3f} "
                f"| {m['i2t_r1']:.3f} | {m['i2t_r5']:.3f} |")
        print(line, flush=True)
        lines.append(line)
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
