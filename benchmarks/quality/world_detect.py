"""Finding the world's objects without their annotations: a small CenterNet-style detector, then the
whole question-answering pipeline from pixels and words (detector -> crops -> perception -> scene;
question -> parser -> program -> executed on that scene).

    .venv/bin/python -m benchmarks.quality.world_detect [--epochs 8]   (after world_perception.py, world_parser.py)

The detector (Zhou et al. 2019, "Objects as Points", made small): a fully convolutional net over the
128 px picture predicts, on a 32 x 32 grid, a heatmap of object centres, each box's size and the
centre's sub-cell offset; trained with the focal loss on A-train's boxes (annotations used for
training only). Detections are the heatmap's local maxima above a threshold. An object's place
for relations comes from its box: its column, and its depth from where the box's bottom meets the
floor (the camera is known: `render.floor_point`).
"""
from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".benchmarks-cache" / "world"
STRIDE, GRID, SIZE = 4, 32, 128


def detector() -> nn.Module:
    def block(a, b, stride=1, dilation=1):
        return [nn.Conv2d(a, b, 3, stride=stride, padding=dilation, dilation=dilation), nn.GroupNorm(8, b), nn.ReLU()]

    body = nn.Sequential(*block(5, 32), *block(32, 48, 2), *block(48, 64), *block(64, 96, 2), *block(96, 96),
                         *block(96, 96, dilation=2), *block(96, 96, dilation=4))
    head = nn.Conv2d(96, 5, 1)  # centre logit, width, height, offset x, offset y
    nn.init.constant_(head.bias[:1], -2.2)
    return nn.Sequential(body, head)


def with_coordinates(images: torch.Tensor) -> torch.Tensor:
    batch = images.shape[0]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    return torch.cat([images, xs.expand(batch, 1, -1, -1), ys.expand(batch, 1, -1, -1)], dim=1)


def load(folder: Path) -> tuple[np.ndarray, list[list[tuple]]]:
    from PIL import Image

    from sensorium.world import read_scenes

    images, boxes = [], []
    for record in read_scenes(folder):
        images.append(np.asarray(Image.open(folder / record["image"]).convert("RGB")))
        boxes.append([tuple(o["box"]) for o in record["objects"]])
    return np.stack(images), boxes


def targets(boxes: list[list[tuple]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    heat = torch.zeros(len(boxes), GRID, GRID)
    regress = torch.zeros(len(boxes), 4, GRID, GRID)
    mask = torch.zeros(len(boxes), GRID, GRID, dtype=torch.bool)
    ys, xs = torch.meshgrid(torch.arange(GRID).float(), torch.arange(GRID).float(), indexing="ij")
    for i, scene in enumerate(boxes):
        for x0, y0, x1, y1 in scene:
            cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
            sigma = max(0.6, max(x1 - x0, y1 - y0) / STRIDE / 6)
            heat[i] = torch.maximum(heat[i], torch.exp(-((xs - cx + 0.5) ** 2 + (ys - cy + 0.5) ** 2) / (2 * sigma ** 2)))
            col, row = min(int(cx), GRID - 1), min(int(cy), GRID - 1)
            heat[i, row, col] = 1.0
            regress[i, :, row, col] = torch.tensor([(x1 - x0) / SIZE, (y1 - y0) / SIZE, cx - col, cy - row])
            mask[i, row, col] = True
    return heat, regress, mask


def loss_of(out: torch.Tensor, heat: torch.Tensor, regress: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
    positive = heat == 1
    focal = torch.where(positive, (1 - p) ** 2 * torch.log(p), (1 - heat) ** 4 * p ** 2 * torch.log(1 - p))
    centres = positive.sum().clamp(min=1)
    size = (out[:, 1:5] - regress).abs().permute(0, 2, 3, 1)[mask].sum() / centres
    return -focal.sum() / centres + 5.0 * size


def detect(model: nn.Module, images: np.ndarray, threshold: float = 0.3) -> list[list[tuple]]:
    model.eval()
    found = []
    with torch.inference_mode():
        for start in range(0, len(images), 64):
            batch = torch.from_numpy(images[start:start + 64]).permute(0, 3, 1, 2).float() / 255
            out = model(with_coordinates(batch))
            heat = torch.sigmoid(out[:, 0])
            peaks = (heat == nn.functional.max_pool2d(heat[:, None], 3, 1, 1)[:, 0]) & (heat > threshold)
            for i in range(len(batch)):
                scene = []
                for row, col in peaks[i].nonzero().tolist():
                    w, h, ox, oy = (out[i, 1:5, row, col] * torch.tensor([SIZE, SIZE, 1, 1])).tolist()
                    cx, cy = (col + ox) * STRIDE, (row + oy) * STRIDE
                    scene.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
                found.append(scene)
    return found


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def match_rates(found, truth) -> tuple[float, float]:
    hits = sum(1 for scene_f, scene_t in zip(found, truth) for t in scene_t if any(iou(f, t) >= 0.5 for f in scene_f))
    right = sum(1 for scene_f, scene_t in zip(found, truth) for f in scene_f if any(iou(f, t) >= 0.5 for t in scene_t))
    return hits / max(sum(map(len, truth)), 1), right / max(sum(map(len, found)), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--scenes", type=int, default=6000)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    from benchmarks.quality.world_perception import fresh_b
    from benchmarks.quality.world_vqa import make_worlds

    folders = make_worlds(args.scenes, 600)
    folders["B-fresh"] = fresh_b(600)
    weights = CACHE / f"detector-{args.scenes}-scenes-{args.epochs}-epochs.pt"
    model = detector()
    if weights.exists():
        model.load_state_dict(torch.load(weights, weights_only=True))
    else:
        images, boxes = load(folders["A-train"])
        heat, regress, mask = targets(boxes)
        optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
        steps = args.epochs * (len(images) // 32)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 2e-3, total_steps=steps)
        began, step = time.perf_counter(), 0
        for epoch in range(args.epochs):
            model.train()
            order = torch.randperm(len(images))
            total = 0.0
            for start in range(0, len(images) - 31, 32):
                pick = order[start:start + 32]
                batch = torch.from_numpy(images[pick.numpy()]).permute(0, 3, 1, 2).float() / 255
                loss = loss_of(model(with_coordinates(batch)), heat[pick], regress[pick], mask[pick])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss)
                step += 1
            print(f"epoch {epoch + 1}: loss {total / (len(images) // 32):.3f}, {time.perf_counter() - began:.0f} s",
                  flush=True)
        torch.save(model.state_dict(), weights)
    for name in ("A-test", "B-fresh"):
        images, boxes = load(folders[name])
        found = detect(model, images)
        recall, precision = match_rates(found, boxes)
        print(f"{name}: objects found (IoU >= 0.5) {recall:.3f}, detections right {precision:.3f}, "
              f"{sum(map(len, found))} detections for {sum(map(len, boxes))} objects", flush=True)
        (CACHE / f"detections-{folders[name].name}.json").write_text(json.dumps(found))
        answer_from_pixels(folders[name], found, args.scenes)


def perceived_from_detections(folder: Path, found: list[list[tuple]], scenes: int) -> dict:
    """Scenes built only from the picture: each detection cropped and read by the perception models
    (colour from the RGB model, shape from the colour-blind one), placed by its box."""
    from PIL import Image

    from benchmarks.quality.world_perception import classify_crops, colour_blind_crops, crop_object
    from sensorium.world import Scene, WorldObject, read_scenes
    from sensorium.world.render import place_from_box, solid

    records = list(read_scenes(folder))
    crop, owner = [], []
    for record, boxes in zip(records, found):
        picture = Image.open(folder / record["image"]).convert("RGB")
        for box in boxes:
            crop.append(crop_object(picture, box, record["size"]))
            owner.append(record["scene"])
    crop = np.stack(crop)
    seen = classify_crops(CACHE / f"perception-{scenes}-scenes-5-epochs", crop)
    seen["shape"] = classify_crops(CACHE / f"perception-colour-blind-{scenes}-scenes-5-epochs",
                                   colour_blind_crops(crop))["shape"]
    perceived = {r["scene"]: Scene(r["scene"], r["seed"], Scene.from_json(r).condition, r["size"], []) for r in records}
    position = 0
    for record, boxes in zip(records, found):
        scene = perceived[record["scene"]]
        for box in boxes:
            x0, y0, x1, y1 = box
            shape, size = seen["shape"][position], seen["size"][position]
            body = solid(shape, size, seen["colour"][position], seen["material"][position], 0.0, 0.0)
            x, z, depth = place_from_box(box, record["size"], body.radius, body.height)
            scene.objects.append(WorldObject(
                id=len(scene.objects), shape=shape, colour=seen["colour"][position], size=size,
                material=seen["material"][position], position=(x, z), box=tuple(box), depth=depth,
                centre_x=(x0 + x1) / 2))
            position += 1
    return perceived


def answer_from_pixels(folder: Path, found: list[list[tuple]], scenes: int) -> None:
    """Every question answered from the picture and the words alone: parsed by world_parser.py's model,
    executed on the scene built from detections. Accuracy per family, and with the true programs."""
    from benchmarks.quality.world_parser import manifest, parse
    from sensorium.world.program import execute

    perceived = perceived_from_detections(folder, found, scenes)
    path, rows = manifest(folder, CACHE / f"parser-{folder.name}.jsonl")
    programs = parse(CACHE / f"parser-{scenes}-scenes-4-epochs", path)
    right: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for row, program in zip(rows, programs):
        scene = perceived[row["scene"]]
        parsed = bool(program) and execute(program, scene) == row["answer"]
        given = execute(row["program"], scene) == row["answer"]
        for key in ("all", row["family"], "relational" if row["family"] in RELATIONAL else "non-relational"):
            right[key].append((parsed, given))
    print(f"\n{folder.name}: answers from pixels and words | parsed program | true program |")
    print("|---|---:|---:|")
    for key in ("all", "non-relational", "relational", "exist", "count", "query_attribute", "compare_attribute",
                "compare_count", "relation", "unanswerable"):
        values = right[key]
        print(f"| {key} | {sum(v[0] for v in values) / len(values):.3f} | {sum(v[1] for v in values) / len(values):.3f} |")


RELATIONAL = {"compare_attribute", "compare_count", "relation"}


if __name__ == "__main__":
    main()
