"""Write examples/coco_pairs.csv (photo, caption) from ../shared/data/coco_mini for align_coco.toml.

    .venv/bin/python examples/coco_manifest.py [--data ../shared/data/coco_mini]
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[1] / "shared" / "data" / "coco_mini"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--out", type=Path, default=HERE / "coco_pairs.csv")
    args = parser.parse_args()
    meta = json.loads((args.data / "captions_train2017.json").read_text(encoding="utf-8"))
    files = {image["id"]: image["file_name"] for image in meta["images"]}
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"])
        for ann in sorted(meta["annotations"], key=lambda a: a["id"]):
            if ann["image_id"] in files:
                writer.writerow([str((args.data / "images" / files[ann["image_id"]]).resolve()),
                                 ann["caption"].strip()])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
