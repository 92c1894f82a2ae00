"""The image expert's runtimes side by side: eager PyTorch, onnxruntime fp32, onnxruntime int8.

    .venv/bin/python -m benchmarks.speed.image_expert_precision [--data DIR] [--repeats 3]

On COCO-mini's 80 photos, each seen as indexing sees it (the whole photo and its 4 quadrants:
400 views of 224x224), with the threads the product uses (all cores):
- model views/s: batches of 16 prepared views through the network alone (best of --repeats);
- photos/s: `ImageExpert.run_crops(photos, "grid")`, preparing the views included (best of --repeats);
- agreement with the torch model: share of views with the same top-1 ImageNet label, and the cosine
  between their 1280-d features (mean and the worst view);
- COCO-mini retrieval through the shipped label bridge (text->image and image->text R@1 on the 400
  captions), faces and OCR computed once and shared, so only the classifier differs;
- first use: exporting (and for int8 calibrating and quantising) the graph into an empty models folder.

The calibration photos are scikit-image's bundled ones, never COCO: the photos judged here are not
the photos that set the ranges.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.quality.coco_retrieval import DEFAULT_DATA, load_coco, recall_table

from sensorium.experts.image import ImageExpert, crop_views

RUNTIMES = (("torch eager fp32", "torch", "fp32"), ("onnxruntime fp32", "onnx", "fp32"),
            ("onnxruntime int8", "onnx", "int8"))
BATCH = 16


def best_seconds(run, repeats: int) -> float:
    run()  # warm: sessions, caches, thread pools
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def first_use_seconds(runtime: str, precision: str, photo: np.ndarray) -> float:
    """Seconds from nothing cached to the first photo's outputs, in an empty models folder."""
    previous = os.environ.get("SENSORIUM_HOME")
    with tempfile.TemporaryDirectory() as home:
        os.environ["SENSORIUM_HOME"] = home
        try:
            started = time.perf_counter()
            ImageExpert(runtime=runtime, precision=precision).run([photo])
            return time.perf_counter() - started
        finally:
            if previous is None:
                os.environ.pop("SENSORIUM_HOME", None)
            else:
                os.environ["SENSORIUM_HOME"] = previous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-retrieval", action="store_true", help="skip the COCO retrieval columns")
    args = parser.parse_args(argv)
    if not (args.data / "captions_train2017.json").is_file():
        print(f"skipped: COCO-mini not found at {args.data}")
        return 0
    import torch

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    pixels, captions, owner = load_coco(args.data)
    views = [view for photo in pixels for view in crop_views(photo, "grid")]
    print(f"COCO-mini: {len(pixels)} photos, {len(views)} views, {threads} threads")

    bridge = encoder = base = caption_vectors = None
    if not args.no_retrieval:
        from sensorium.experts.text import TextEncoder
        from sensorium.space.image_bridge import ImageBridge

        encoder = TextEncoder()
        bridge = ImageBridge(encoder=encoder, ocr="auto")
        base = bridge.observe(pixels, "grid")  # faces and OCR, shared by every runtime
        caption_vectors = encoder.encode(captions)

    rows, reference = [], None
    for label, runtime, precision in RUNTIMES:
        first = first_use_seconds(runtime, precision, pixels[0])
        expert = ImageExpert(runtime=runtime, precision=precision, batch_size=BATCH)
        model_s = best_seconds(lambda: [expert.forward(views[i:i + BATCH]) for i in range(0, len(views), BATCH)],
                               args.repeats)
        photo_s = best_seconds(lambda: expert.run_crops(pixels, "grid"), args.repeats)
        outputs = expert.run_views(views)
        if reference is None:
            reference = outputs
        agree = float((outputs.probs.argmax(1) == reference.probs.argmax(1)).mean())
        cosine = (outputs.features * reference.features).sum(1)
        row = {"label": label, "views/s": len(views) / model_s, "photos/s": len(pixels) / photo_s,
               "agree": agree, "cos mean": float(cosine.mean()), "cos min": float(cosine.min()), "first": first}
        if bridge is not None:
            from sensorium.space.image_bridge import ImageEvidence

            evidence = [ImageEvidence(outputs.probs[i * 5:(i + 1) * 5], outputs.features[i * 5], b.faces, b.clothing,
                                      b.ocr_lines) for i, b in enumerate(base)]
            metrics = recall_table(np.stack([bridge.vector(e) for e in evidence]), caption_vectors, owner)
            row.update(t2i=metrics["t2i_r1"], i2t=metrics["i2t_r1"])
        rows.append(row)
        print(f"  {label}: {row['views/s']:.1f} views/s, {row['photos/s']:.1f} photos/s", flush=True)

    base_views, base_photos = rows[1]["views/s"], rows[1]["photos/s"]
    print("\n| runtime | model views/s | vs onnx fp32 | photos/s (5 views, prep incl.) | vs onnx fp32 "
          "| top-1 = torch | feature cos mean / min | T2I R@1 | I2T R@1 | first use s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        retrieval = (f"{row['t2i']:.4f} | {row['i2t']:.4f}" if "t2i" in row else "- | -")
        print(f"| {row['label']} | {row['views/s']:.1f} | {row['views/s'] / base_views:.2f}x | {row['photos/s']:.1f} "
              f"| {row['photos/s'] / base_photos:.2f}x | {row['agree']:.3f} | {row['cos mean']:.4f} / {row['cos min']:.4f} "
              f"| {retrieval} | {row['first']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
