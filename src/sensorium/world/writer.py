"""A world dataset on disk: pictures, one JSONL line of exact annotations per scene, and flat manifests.

    OUT/world.json        the parameters (seed, condition, size, ...) and vocabularies; what resuming checks
    OUT/images/000123.png one picture per scene
    OUT/scenes.jsonl      per scene: objects (attributes, floor position, box, visible share), captions, questions
    OUT/questions.jsonl   one line per question: image, question, answer, family, ... (a training manifest)
    OUT/captions.jsonl    one line per caption: image, caption, template

Scenes are pure functions of (seed, index), so generation runs in worker processes in any order
and is resumable: run the same command again after an interruption and it carries on from the
last complete scene; a larger `--scenes` extends the dataset. Different parameters for an
existing folder are refused rather than mixed in.
"""
from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SensoriumError
from .language import captions, language_rng, questions
from .scene import SceneOptions, generate_scene
from .vocabulary import ANSWERS, CANNOT_TELL, COLOURS, CONDITION_COLOURS, MATERIALS, SHAPES, SIZES

if TYPE_CHECKING:
    import numpy as np

FORMAT = "sensorium-world/1"
SCENES_FILE, QUESTIONS_FILE, CAPTIONS_FILE, META_FILE = "scenes.jsonl", "questions.jsonl", "captions.jsonl", "world.json"
IMAGE_DIR = "images"


class WorldError(SensoriumError):
    """A world folder that cannot be written or read as asked."""


@dataclass(frozen=True)
class WorldSpec:
    """Everything a world dataset is a function of, besides how many scenes it holds."""

    seed: int = 0
    options: SceneOptions = SceneOptions()
    questions_per_scene: int = 10
    captions_per_scene: int = 5

    def to_json(self) -> dict:
        o = self.options
        return {"seed": self.seed, "condition": o.condition.value, "size": o.size, "min_objects": o.min_objects,
                "max_objects": o.max_objects, "antialias": o.antialias, "min_visible": o.min_visible,
                "questions_per_scene": self.questions_per_scene, "captions_per_scene": self.captions_per_scene}


def image_name(index: int) -> str:
    return f"{IMAGE_DIR}/{index:06d}.png"


def scene_record(spec: WorldSpec, index: int) -> tuple[dict, bytes]:
    """Scene `index` as its JSON record and its picture as PNG bytes."""
    from PIL import Image

    scene, pixels = generate_scene(spec.seed, index, spec.options)
    rng = language_rng(spec.seed, index)
    record = scene.to_json()
    record["image"] = image_name(index)
    record["captions"] = [c.to_json() for c in captions(scene, spec.captions_per_scene, rng)]
    record["questions"] = [q.to_json() for q in questions(scene, spec.questions_per_scene, rng)]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return record, buffer.getvalue()


def _records(spec: WorldSpec, indices: range, workers: int) -> Iterator[tuple[dict, bytes]]:
    if workers <= 1 or len(indices) < 64:
        for index in indices:
            yield scene_record(spec, index)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_record_of, [(spec, i) for i in indices], chunksize=32)


def _record_of(job: tuple[WorldSpec, int]) -> tuple[dict, bytes]:
    return scene_record(*job)


def _complete_scenes(path: Path) -> int:
    """How many scenes scenes.jsonl holds intact (0, 1, ... in order); a torn last line is cut off."""
    if not path.exists():
        return 0
    good, offset = 0, 0
    with path.open("rb") as handle:
        for line in handle:
            try:
                if not line.endswith(b"\n") or json.loads(line)["scene"] != good:
                    break
            except (ValueError, KeyError):
                break
            good += 1
            offset += len(line)
    if offset < path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(offset)
    return good


def _metadata(spec: WorldSpec, scenes: int) -> dict:
    return {"format": FORMAT, **spec.to_json(), "scenes": scenes,
            "vocabulary": {"shape": list(SHAPES), "colour": list(COLOURS), "size": list(SIZES),
                           "material": list(MATERIALS)},
            "condition_colours": {shape: list(colours)
                                  for shape, colours in CONDITION_COLOURS[spec.options.condition].items()},
            "answers": list(ANSWERS), "cannot_tell": CANNOT_TELL}


def make_world(out: Path, scenes: int, spec: WorldSpec = WorldSpec(), workers: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Write (or resume, or extend) the world dataset in `out`; returns a summary with counts."""
    out = Path(out)
    if scenes < 1:
        raise WorldError(f"--scenes: {scenes}; need at least 1")
    meta_path = out / META_FILE
    if meta_path.exists():
        try:
            stored = json.loads(meta_path.read_text("utf-8"))
        except ValueError as exc:
            raise WorldError(f"{meta_path}: unreadable ({exc}); move it away to start afresh") from exc
        differing = [k for k, v in spec.to_json().items() if stored.get(k) != v]
        if stored.get("format") != FORMAT or differing:
            raise WorldError(f"{out}: holds a world made with other parameters ({', '.join(differing) or 'format'}); "
                             "choose another folder, or the same parameters to resume")
    elif out.exists() and any(out.iterdir()):
        raise WorldError(f"{out}: not empty and not a world folder; choose an empty or new folder")
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    scenes_path = out / SCENES_FILE
    done = _complete_scenes(scenes_path)
    meta_path.write_text(json.dumps(_metadata(spec, max(scenes, done)), indent=2) + "\n", "utf-8")
    workers = workers or os.cpu_count() or 1
    if progress:
        progress(min(done, scenes), scenes)
    with scenes_path.open("a", encoding="utf-8") as lines:
        for number, (record, png) in enumerate(_records(spec, range(done, scenes), workers), start=done + 1):
            image = out / record["image"]
            image.with_suffix(".tmp").write_bytes(png)
            os.replace(image.with_suffix(".tmp"), image)
            lines.write(json.dumps(record, separators=(",", ":")) + "\n")
            if number % 256 == 0:
                lines.flush()
            if progress:
                progress(number, scenes)
    return write_manifests(out)


def read_scenes(out: Path) -> Iterator[dict]:
    path = Path(out) / SCENES_FILE
    if not path.exists():
        raise WorldError(f"{out}: no {SCENES_FILE}; make one with `sensorium world make {out}`")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise WorldError(f"{path} line {number}: not JSON ({exc})") from exc


def read_pictures(out: Path, scenes: int = 0) -> tuple[np.ndarray, list[dict]]:
    """(pictures (N, S, S, 3) uint8, their scene records) of a world folder; the first `scenes` (0 = all).
    A picture that cannot be read is a WorldError naming its file."""
    import numpy as np
    from PIL import Image

    out = Path(out)
    pictures, records = [], []
    for record in read_scenes(out):
        if scenes and len(records) >= scenes:
            break
        path = out / record["image"]
        try:
            with Image.open(path) as image:
                pictures.append(np.asarray(image.convert("RGB")))
        except (OSError, ValueError) as exc:
            raise WorldError(f"{path}: cannot read the picture ({exc})") from exc
        records.append(record)
    if not records:
        raise WorldError(f"{out}: no scenes")
    return np.stack(pictures), records


def write_manifests(out: Path) -> dict:
    """questions.jsonl and captions.jsonl from scenes.jsonl (one line per question / caption); counts."""
    out = Path(out)
    families: Counter = Counter()
    answers: Counter = Counter()
    scenes = objects = caption_count = 0
    with (out / QUESTIONS_FILE).open("w", encoding="utf-8") as q_out, \
            (out / CAPTIONS_FILE).open("w", encoding="utf-8") as c_out:
        for record in read_scenes(out):
            scenes += 1
            objects += len(record["objects"])
            base = {"image": record["image"], "scene": record["scene"], "condition": record["condition"]}
            for question in record["questions"]:
                q_out.write(json.dumps({**base, **question}, separators=(",", ":")) + "\n")
                families[question["family"]] += 1
                answers[question["answer"]] += 1
            for caption in record["captions"]:
                c_out.write(json.dumps({**base, "caption": caption["text"], "template": caption["template"]},
                                       separators=(",", ":")) + "\n")
                caption_count += 1
    return {"folder": str(out), "scenes": scenes, "objects": objects, "questions": sum(families.values()),
            "captions": caption_count, "families": dict(sorted(families.items())),
            "answers": dict(answers.most_common())}
