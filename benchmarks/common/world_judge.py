"""The judge of generated world scenes: which colour-shape objects a picture shows, and where.

A small fully convolutional detector in the manner of CenterNet (Zhou et al. 2019), trained on real
rendered scenes of every colour condition (so a held-out combination is no stranger to it) and never
shown to the generator. On a grid of 4 x 4 px cells it predicts, for each of the world's 40
(colour, shape) combinations, a heat map peaking where such an object's centre is, the centre's
offset within its cell, and the object's depth (the world's own annotations are the targets). An
object is found when its heat peak passes a threshold chosen on real validation scenes; prompt
adherence is then read exactly as the world decides its relations: "left of" by columns, "in front
of" by depth.

An earlier judge read the whole picture into one vector and found only 0.69 of the objects in real
scenes; a detector sees each object where it is, whatever else the picture holds.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from benchmarks.common.judge import fit
from sensorium.training.imagining_world import combinations
from sensorium.world import Condition, SceneOptions, generate_scene
from sensorium.world.relations import Relation

COMBINATIONS = combinations()
INDEX = {combo: i for i, combo in enumerate(COMBINATIONS)}
STRIDE = 4  # pixels per grid cell
SPREAD = 1.0  # cells: the standard deviation of the heat around an object's centre
DEPTH_MEAN, DEPTH_SCALE = 8.0, 1.0  # depths run 6.2-10.0 world units (sd 1.05)
HEAT, OFFSET, DEPTH = 0, 1, 2  # the three maps per combination


@dataclass
class Reading:
    present: np.ndarray  # (N, 40) the heat peak's probability that an object of the combination is there
    column: np.ndarray  # (N, 40) the peak's column in pixels (larger is further right)
    depth: np.ndarray  # (N, 40) its depth in world units (larger is further back)
    threshold: float = 0.5  # `present` above this counts as found

    def found(self, row, combination: int):
        return self.present[row, combination] > self.threshold


def _block(a: int, b: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(a, b, 3, stride, dilation, dilation), nn.BatchNorm2d(b), nn.ReLU()]


class WorldJudge(nn.Module):
    def __init__(self, size: int = 64):
        super().__init__()
        self.size = size
        self.body = nn.Sequential(*_block(3, 24), *_block(24, 48, 2), *_block(48, 64, 2), *_block(64, 96),
                                  *_block(96, 96, dilation=2), *_block(96, 96, dilation=4))
        # the cell's own coordinates join the features: depth is read partly from height in the picture
        self.head = nn.Sequential(*_block(98, 96), nn.Conv2d(96, 3 * len(COMBINATIONS), 1))
        self.head[-1].bias.data[:len(COMBINATIONS)] = -4.0  # few cells hold an object: start from "nothing"
        self.register_buffer("threshold", torch.tensor(0.5))

    def forward(self, pixels: Tensor) -> Tensor:
        """uint8 (N, H, W, 3) -> (N, 3, 40, H/4, W/4): heat logit, column offset in cells, standardised depth."""
        x = pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        features = self.body(x)
        n, _, h, w = features.shape
        ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(n, 1, h, w)
        xs = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(n, 1, h, w)
        out = self.head(torch.cat([features, ys, xs], 1))
        return out.view(n, 3, len(COMBINATIONS), h, w)


def real_scenes(count: int, size: int, seed: int, condition: Condition = Condition.ALL):
    """COUNT rendered scenes of one or two large objects: (images, objects per scene as (combination, column px,
    row px, depth) rows, the scenes)."""
    options = SceneOptions(size=size, min_objects=1, max_objects=2, condition=condition, sizes=("large",))
    images = np.zeros((count, size, size, 3), dtype=np.uint8)
    objects, scenes = [], []
    for index in range(count):
        scene, images[index] = generate_scene(seed, index, options)
        objects.append([(INDEX[(o.colour, o.shape)], o.centre_x, (o.box[1] + o.box[3]) / 2, o.depth)
                        for o in scene.objects])
        scenes.append(scene)
    return images, objects, scenes


def heat_targets(objects: list, size: int) -> tuple[Tensor, Tensor]:
    """Per scene, the target maps (N, 3, 40, g, g) and where the centres fall (N, 40, g, g, bool)."""
    grid = size // STRIDE
    maps = torch.zeros(len(objects), 3, len(COMBINATIONS), grid, grid)
    centres = torch.zeros(len(objects), len(COMBINATIONS), grid, grid, dtype=torch.bool)
    cells = torch.arange(grid, dtype=torch.float32)
    for n, rows in enumerate(objects):
        for k, column, row, depth in rows:
            cx, cy = min(column / STRIDE, grid - 1e-3), min(row / STRIDE, grid - 1e-3)
            ix, iy = int(cx), int(cy)
            bump = torch.exp(-((cells[:, None] - iy) ** 2 + (cells[None, :] - ix) ** 2) / (2 * SPREAD ** 2))
            maps[n, HEAT, k] = torch.maximum(maps[n, HEAT, k], bump)
            maps[n, OFFSET, k, iy, ix] = cx - ix
            maps[n, DEPTH, k, iy, ix] = (depth - DEPTH_MEAN) / DEPTH_SCALE
            centres[n, k, iy, ix] = True
    return maps, centres


def detection_loss(out: Tensor, maps: Tensor, centres: Tensor) -> Tensor:
    """CenterNet's penalty-reduced focal loss on the heat, L1 on offset and depth at the centres."""
    p = torch.sigmoid(out[:, HEAT]).clamp(1e-4, 1 - 1e-4)
    target = maps[:, HEAT]
    positive = centres.float()
    focal = -(positive * (1 - p) ** 2 * torch.log(p)
              + (1 - positive) * (1 - target) ** 4 * p ** 2 * torch.log(1 - p)).sum()
    count = positive.sum().clamp_min(1)
    place = ((out[:, OFFSET] - maps[:, OFFSET]).abs() + (out[:, DEPTH] - maps[:, DEPTH]).abs())[centres].sum()
    return (focal + place) / count


def train_world_judge(images: np.ndarray, objects: list, epochs: int = 4, seed: int = 0,
                      batch: int = 64) -> WorldJudge:
    torch.manual_seed(seed)
    model = WorldJudge(images.shape[1])
    x_all = torch.from_numpy(images)

    def loss_of(rows, rng):
        x = x_all[rows]
        if rng.random() < 0.5:  # generated pictures are noisier than renders: a little noise, now and then
            x = (x.float() + torch.randn(x.shape) * float(rng.uniform(2, 10))).clamp(0, 255).to(torch.uint8)
        maps, centres = heat_targets([objects[int(r)] for r in rows], images.shape[1])
        return detection_loss(model(x), maps, centres)

    return fit(model, len(images), loss_of, epochs, seed, batch, "world judge")


@torch.inference_mode()
def read(model: WorldJudge, images: np.ndarray, batch: int = 256) -> Reading:
    """Each combination's strongest cell: its probability, column (cell + offset) and depth."""
    presents, columns, depths = [], [], []
    for start in range(0, len(images), batch):
        out = model(torch.from_numpy(images[start:start + batch]))
        n, _, k, h, w = out.shape
        heat = out[:, HEAT].reshape(n, k, h * w)
        peak, where = heat.max(-1)
        offset = out[:, OFFSET].reshape(n, k, h * w).gather(-1, where[..., None])[..., 0]
        depth = out[:, DEPTH].reshape(n, k, h * w).gather(-1, where[..., None])[..., 0]
        presents.append(torch.sigmoid(peak))
        columns.append(((where % w).float() + offset) * STRIDE)
        depths.append(depth * DEPTH_SCALE + DEPTH_MEAN)
    return Reading(torch.cat(presents).numpy(), torch.cat(columns).numpy(), torch.cat(depths).numpy(),
                   float(model.threshold))


def choose_threshold(model: WorldJudge, images: np.ndarray, objects: list) -> float:
    """The presence threshold that makes the fewest mistakes (missed + wrongly found objects) on real scenes."""
    reading = read(model, images)
    there = np.zeros_like(reading.present, dtype=bool)
    for n, rows in enumerate(objects):
        for k, *_ in rows:
            there[n, k] = True
    candidates = np.linspace(0.05, 0.95, 91)
    mistakes = [np.sum(there & (reading.present <= t)) + np.sum(~there & (reading.present > t)) for t in candidates]
    return float(candidates[int(np.argmin(mistakes))])


def relation_right(reading: Reading, row: int, subject: tuple[str, str], relation: Relation,
                   anchor: tuple[str, str]) -> bool:
    """Whether, as the judge reads picture ROW, SUBJECT stands in RELATION to ANCHOR."""
    a, b = INDEX[subject], INDEX[anchor]
    if relation in (Relation.LEFT, Relation.RIGHT):
        gap = reading.column[row, a] - reading.column[row, b]
        return bool(gap < 0) if relation == Relation.LEFT else bool(gap > 0)
    gap = reading.depth[row, a] - reading.depth[row, b]
    return bool(gap < 0) if relation == Relation.FRONT else bool(gap > 0)


def cached_world_judge(cache: Path, size: int = 64, count: int = 20000, epochs: int = 4, seed: int = 9001,
                       validation: int = 2000) -> WorldJudge:
    """The judge trained once on COUNT real scenes (seed SEED, every condition), its threshold chosen on
    VALIDATION more (seed SEED + 1), kept in CACHE."""
    from safetensors.torch import load_file, save_file

    source = Path(__file__).read_bytes() + Path(generate_scene.__code__.co_filename).read_bytes()
    digest = hashlib.sha256(source + f"{size}-{count}-{epochs}-{seed}-{validation}".encode()).hexdigest()[:16]
    path = cache / f"world-judge-{digest}.safetensors"
    model = WorldJudge(size)
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    images, objects, _ = real_scenes(count, size, seed)
    model = train_world_judge(images, objects, epochs)
    held_images, held_objects, _ = real_scenes(validation, size, seed + 1)
    model.threshold.fill_(choose_threshold(model, held_images, held_objects))
    cache.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model
