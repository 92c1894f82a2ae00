"""How sure an answer is: the share of the scenes the models might have seen that give the same answer.

The answerer executes a program on one scene, the most likely reading of the picture. Its errors
come from that reading: an object found or missed near the detector's threshold, a shape or a size
read at 0.6, a count off by one in a crowded scene. The least score among the objects an answer
looked at misses most of them (a count is wrong because of an object it did not look at), so it
ranked errors worse than chance (BENCHMARKS.md, the world's question answerer).

Here the detector's candidates down to `low` are kept each with a probability that rises through
the threshold (a logistic of width `temperature` on the centre score), and each kept object's
attributes are drawn from the object reader's probabilities; the program runs on `samples` such
scenes. The answer's confidence is the share that agree with it, times the parse's confidence:
uncertainty propagated through the program, as a probabilistic program would, by sampling.
`temperature` (0.1 against 0.05) and `low` were chosen on the A-dev world (seed 5), not on a test split.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detector import Detection
from .perception import ATTRIBUTE_BLOCKS
from .render import place_from_box, solid
from .scene import Scene, WorldObject
from .vocabulary import Condition


@dataclass(frozen=True)
class DoubtOptions:
    samples: int = 20  # scenes drawn per picture; 0: an answer's confidence is its parse's alone (faster)
    low: float = 0.1  # the least centre score of a candidate object
    temperature: float = 0.1  # width of the keep probability's rise through the detector's threshold
    seed: int = 0  # the same picture gives the same confidence


def scene_of(width: int, detections: list[Detection], values: list[dict[str, str]]) -> Scene:
    """A `Scene` of these detections read as `values`, each placed on the floor from its box."""
    objects = []
    for detection, read in zip(detections, values):
        body = solid(read["shape"], read["size"], read["colour"], read["material"], 0.0, 0.0)
        x, z, depth = place_from_box(detection.box, width, body.radius, body.height)
        x0, _, x1, _ = detection.box
        objects.append(WorldObject(id=len(objects), **read, position=(x, z), box=detection.box, depth=depth,
                                   centre_x=(x0 + x1) / 2))
    return Scene(0, 0, Condition.ALL, width, objects)


def keep_probability(scores: np.ndarray, threshold: float, temperature: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(np.asarray(scores, np.float64) - threshold) / temperature))


def sample_scenes(width: int, candidates: list[Detection], probabilities: np.ndarray, threshold: float,
                  options: DoubtOptions) -> list[Scene]:
    """`options.samples` scenes the picture might show, given its candidates and their (N, 17) probabilities."""
    rng = np.random.default_rng(options.seed)
    count = len(candidates)
    keep = rng.random((options.samples, count)) < keep_probability([c.score for c in candidates], threshold,
                                                                  options.temperature)
    drawn = {}
    for name, values, first, end in ATTRIBUTE_BLOCKS:
        block = np.asarray(probabilities[:, first:end], np.float64).reshape(count, end - first)
        cumulative = np.cumsum(block / np.maximum(block.sum(axis=1, keepdims=True), 1e-12), axis=1)
        u = rng.random((options.samples, count, 1))
        drawn[name] = np.minimum((cumulative[None] < u).sum(axis=2), len(values) - 1)
    scenes = []
    for sample in range(options.samples):
        kept = np.flatnonzero(keep[sample])
        reads = [{name: values[drawn[name][sample, i]] for name, values, _, _ in ATTRIBUTE_BLOCKS} for i in kept]
        scenes.append(scene_of(width, [candidates[i] for i in kept], reads))
    return scenes
