"""Image-caption pairs from the demo's sample photos, as a `sensorium align` manifest."""
from __future__ import annotations

import csv
from pathlib import Path


def make_pairs(root: Path) -> Path:
    """The 10 sample photos, each with its description and a short caption; returns the manifest."""
    from sensorium.demo.sample_data import PHOTOS, _render_photo

    photos = root / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    rows = []
    for recipe in PHOTOS:
        name = Path(recipe.path).name
        (photos / name).write_bytes(_render_photo(recipe))
        rows.append({"image": f"photos/{name}", "caption": recipe.description})
        rows.append({"image": f"photos/{name}", "caption": "a photo of " + recipe.source.replace("_", " ")})
    manifest = root / "pairs.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["image", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
