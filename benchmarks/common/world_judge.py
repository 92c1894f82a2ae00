"""The judge of generated world scenes: which colour-shape objects a picture shows, and where.

A small CNN trained on 12,000 real rendered scenes of every colour condition (so a held-out combination
is no stranger to it), never shown to the generator. For each of the world's 40 (colour, shape)
combinations it predicts whether one is in the picture, the column of its centre and its depth
(the world's own annotations are the targets). Prompt adherence is then read exactly as the
world decides its relations: "left of" by columns, "in front of" by depth.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from benchmarks.common.judge import fit
from sensorium.training.imagining_world import combinations
from sensorium.world import Condition, SceneOptions, generate_scene
from sensorium.world.relations import Relation

COMBINATIONS = combinations()
INDEX = {combo: i for i, combo in enumerate(COMBINATIONS)}


@dataclass
class Reading:
    present: np.ndarray  # (N, 40) probability that the combination is in the picture
    column: np.ndarray  # (N, 40) its centre's column, standardised (larger is further right)
    depth: np.ndarray  # (N, 40) its depth, standardised (larger is further back)


class WorldJudge(nn.Module):
    def __init__(self, size: int = 64):
        super().__init__()

        def block(a: int, b: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, stride, 1), nn.BatchNorm2d(b), nn.ReLU()]

        self.body = nn.Sequential(*block(3, 32, 1), *block(32, 48, 2), *block(48, 64, 1), *block(64, 96, 2),
                                  *block(96, 96, 1), *block(96, 96, 2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(96 * (size // 8) ** 2, 256), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Linear(256, 3 * len(COMBINATIONS)))

    def forward(self, pixels: Tensor) -> Tensor:
        """uint8 (N, H, W, 3) -> (N, 3, 40): presence logit, column, depth."""
        x = pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.head(self.body(x)).view(len(x), 3, len(COMBINATIONS))


def real_scenes(count: int, size: int, seed: int, condition: Condition = Condition.ALL):
    """COUNT rendered scenes of one or two large objects, and their targets (presence, column, depth)."""
    options = SceneOptions(size=size, min_objects=1, max_objects=2, condition=condition, sizes=("large",))
    images = np.zeros((count, size, size, 3), dtype=np.uint8)
    targets = np.zeros((count, 3, len(COMBINATIONS)), dtype=np.float32)
    scenes = []
    for index in range(count):
        scene, images[index] = generate_scene(seed, index, options)
        for obj in scene.objects:
            k = INDEX[(obj.colour, obj.shape)]
            targets[index, :, k] = (1.0, obj.centre_x / size, obj.depth)
        scenes.append(scene)
    return images, targets, scenes


# targets standardised for the loss: columns run 0.18-0.82 of the width, depths 6.2-10.0 units (sd 1.05)
COLUMN_MEAN, COLUMN_SCALE, DEPTH_MEAN, DEPTH_SCALE = 0.5, 0.15, 8.0, 1.0
PRESENT_WEIGHT = 10.0


def train_world_judge(images: np.ndarray, targets: np.ndarray, epochs: int = 4, seed: int = 0,
                      batch: int = 128) -> WorldJudge:
    torch.manual_seed(seed)
    model = WorldJudge(images.shape[1])
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(targets)

    def loss_of(rows, rng):
        out, y = model(x_all[rows]), y_all[rows]
        there = y[:, 0]
        column, depth = (y[:, 1] - COLUMN_MEAN) / COLUMN_SCALE, (y[:, 2] - DEPTH_MEAN) / DEPTH_SCALE
        place = ((out[:, 1] - column) ** 2 + (out[:, 2] - depth) ** 2) * there
        # 1-2 of 40 combinations are in a picture: without a weight on the present ones the judge learns "never"
        found = F.binary_cross_entropy_with_logits(out[:, 0], there, pos_weight=torch.tensor(PRESENT_WEIGHT))
        return found + place.sum() / there.sum().clamp_min(1)

    return fit(model, len(images), loss_of, epochs, seed, batch, "world judge")


@torch.inference_mode()
def read(model: WorldJudge, images: np.ndarray, batch: int = 256) -> Reading:
    outs = [model(torch.from_numpy(images[s:s + batch])) for s in range(0, len(images), batch)]
    out = torch.cat(outs).numpy()
    return Reading(1 / (1 + np.exp(-out[:, 0])), out[:, 1], out[:, 2])


def relation_right(reading: Reading, row: int, subject: tuple[str, str], relation: Relation,
                   anchor: tuple[str, str]) -> bool:
    """Whether, as the judge reads picture ROW, SUBJECT stands in RELATION to ANCHOR."""
    a, b = INDEX[subject], INDEX[anchor]
    if relation in (Relation.LEFT, Relation.RIGHT):
        gap = reading.column[row, a] - reading.column[row, b]
        return bool(gap < 0) if relation == Relation.LEFT else bool(gap > 0)
    gap = reading.depth[row, a] - reading.depth[row, b]
    return bool(gap < 0) if relation == Relation.FRONT else bool(gap > 0)


def cached_world_judge(cache: Path, size: int = 64, count: int = 12000, epochs: int = 3, seed: int = 9001) -> WorldJudge:
    """The judge trained once on COUNT real scenes (seed SEED, every condition) and kept in CACHE."""
    from safetensors.torch import load_file, save_file

    source = Path(__file__).read_bytes() + Path(generate_scene.__code__.co_filename).read_bytes()
    digest = hashlib.sha256(source + f"{size}-{count}-{epochs}-{seed}".encode()).hexdigest()[:16]
    path = cache / f"world-judge-{digest}.safetensors"
    model = WorldJudge(size)
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    images, targets, _ = real_scenes(count, size, seed)
    model = train_world_judge(images, targets, epochs)
    cache.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model
