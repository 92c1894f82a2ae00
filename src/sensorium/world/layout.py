"""Layouts: where each asked object stands in a picture, planned from a sentence before anything is drawn.

A text-to-image model that reads only words places objects at chance: asked for "a red sphere to
the left of a blue cone", ours drew both objects about half the time and put them the right way
round half of those (BENCHMARKS.md, "Text -> image on the world's scenes"). Large models share the
failure; the remedy in the literature (LayoutGPT, GLIGEN, LayoutDiffusion) is to decide the layout
first and draw to it. Here the layout is planned by the world itself: the sentence is read into
objects and a relation (`read_prompt`), and the world's own placement rules draw positions until
the relation holds, measured by the same renderer that draws training scenes (`plan_layout`).

A layout is a small array, one row per object, far ones first (`LAYOUT_FIELDS`); `layout_map`
paints it as channels the size of the picture (the object's colour and shape as one-hot values
over its box, and an occupancy channel), which is what a layout-conditioned model reads beside the
noisy picture. Training takes layouts from the drawn scenes' exact boxes; drawing takes them from
the plan.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .relations import Relation, relation_holds
from .scene import Scene, SceneOptions, WorldObject, place_objects
from .vocabulary import (COLOURS, GENERIC_NOUNS, MATERIALS, PLURALS, SHAPES, Attribute, Condition, attribute_of, canonical,
                         words_of)

MAX_LAYOUT_OBJECTS = 2  # the layout-conditioned model learns from scenes of one or two objects
LAYOUT_CHANNELS = len(COLOURS) + len(SHAPES) + 1  # colour one-hot, shape one-hot, occupancy
LAYOUT_FIELDS = ("present", "colour", "shape", "x0", "y0", "x1", "y1")  # one row of a layout array
# words that name a relation, as prompts say them ("to the left of", "in front of", "behind", "above" not)
RELATION_CUES = {"left": Relation.LEFT, "right": Relation.RIGHT, "front": Relation.FRONT, "behind": Relation.BEHIND}


@dataclass
class PromptReading:
    """What a sentence asks to be drawn: object descriptions in order, and how the first stands to the second."""

    objects: list[dict[Attribute, str]]
    relation: Relation | None = None
    unread: bool = False  # no object could be read from the words (the model then draws from words alone)


def read_prompt(text: str) -> PromptReading:
    """"a big red metal ball to the left of a blue cone" -> [{size, colour, material, shape}, {colour, shape}],
    LEFT. An object phrase ends at a shape noun ("ball", "rings") or a generic one ("thing"); the
    relation is the cue word between the first two phrases. More than MAX_LAYOUT_OBJECTS objects:
    the first ones are kept."""
    objects: list[dict[Attribute, str]] = []
    pending: dict[Attribute, str] = {}
    relation: Relation | None = None
    for word in words_of(text):
        singular = next((one for one, many in PLURALS.items() if many == word), word)
        if singular in GENERIC_NOUNS:
            objects.append(pending)
            pending = {}
            continue
        if word in RELATION_CUES and len(objects) == 1 and relation is None:
            relation = RELATION_CUES[word]
            continue
        value = canonical(word)
        if value is None:
            continue
        attribute = attribute_of(value)
        pending[attribute] = value
        if attribute == Attribute.SHAPE:
            objects.append(pending)
            pending = {}
    if pending:
        objects.append(pending)  # "something red": adjectives with no noun still describe an object
    objects = objects[:MAX_LAYOUT_OBJECTS]
    if len(objects) < 2:
        relation = None
    return PromptReading(objects, relation, unread=not objects)


def _choose(rng: np.random.Generator, options) -> str:
    return str(options[int(rng.integers(len(options)))])


def plan_layout(reading: PromptReading, size: int, rng: np.random.Generator,
                sizes: tuple[str, ...] = ("large",)) -> Scene | None:
    """A scene of the asked objects standing as asked, from the world's placement rules: unnamed
    attributes drawn at random (any colour for any shape: a prompt may ask what training never
    showed); an object's size is the asked one when it is among SIZES (those the model was trained
    with), else one of them. None when nothing was read or no
    placement satisfies the relation."""
    if reading.unread:
        return None
    objects = []
    for number, description in enumerate(reading.objects):
        asked_size = description.get(Attribute.SIZE)
        objects.append(WorldObject(
            id=number, shape=description.get(Attribute.SHAPE) or _choose(rng, SHAPES),
            colour=description.get(Attribute.COLOUR) or _choose(rng, COLOURS),
            size=asked_size if asked_size in sizes else _choose(rng, sizes),
            material=description.get(Attribute.MATERIAL) or _choose(rng, MATERIALS), position=(0.0, 0.0)))
    options = SceneOptions(size=size, min_objects=1, max_objects=max(1, len(objects)), condition=Condition.ALL,
                           sizes=tuple(sorted({o.size for o in objects})))

    def stands_as_asked(placed: list[WorldObject]) -> bool:
        return reading.relation is None or bool(relation_holds(placed[0], placed[1], reading.relation, size))

    return place_objects(objects, rng, options, accept=stands_as_asked)


def layout_rows(objects: list[WorldObject]) -> np.ndarray:
    """(MAX_LAYOUT_OBJECTS, len(LAYOUT_FIELDS)) float32: the objects far ones first (nearer ones paint
    over them), empty rows after."""
    rows = np.zeros((MAX_LAYOUT_OBJECTS, len(LAYOUT_FIELDS)), dtype=np.float32)
    for row, obj in enumerate(sorted(objects, key=lambda o: -o.depth)[:MAX_LAYOUT_OBJECTS]):
        rows[row] = (1.0, COLOURS.index(obj.colour), SHAPES.index(obj.shape), *obj.box)
    return rows


def layout_map(rows: np.ndarray, size: int) -> np.ndarray:
    """(LAYOUT_CHANNELS, size, size) float32 from `layout_rows`: each present object's box set to its
    colour and shape one-hot values and occupancy 1, rows painted in order."""
    painted = np.zeros((LAYOUT_CHANNELS, size, size), dtype=np.float32)
    for present, colour, shape, x0, y0, x1, y1 in rows:
        if present < 0.5:
            continue
        c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        c1, r1 = min(size, int(np.ceil(x1))), min(size, int(np.ceil(y1)))
        if c1 <= c0 or r1 <= r0:
            continue
        painted[:, r0:r1, c0:c1] = 0.0
        painted[int(colour), r0:r1, c0:c1] = 1.0
        painted[len(COLOURS) + int(shape), r0:r1, c0:c1] = 1.0
        painted[-1, r0:r1, c0:c1] = 1.0
    return painted


def planned_maps(prompts: list[str], size: int, seed: int, sizes: tuple[str, ...] = ("large",)
                 ) -> tuple[np.ndarray, list[Scene | None]]:
    """A planned layout per prompt, as maps (len(prompts), LAYOUT_CHANNELS, size, size) and the scenes
    planned (None where nothing could be read or placed: an all-zero map, "no layout"). Picture i's
    plan is a function of (SEED, i), so the same request plans the same layouts."""
    maps = np.zeros((len(prompts), LAYOUT_CHANNELS, size, size), dtype=np.float32)
    plans: list[Scene | None] = []
    readings: dict[str, PromptReading] = {}
    for number, prompt in enumerate(prompts):
        reading = readings.setdefault(prompt, read_prompt(prompt))
        plan = plan_layout(reading, size, np.random.default_rng([int(seed), number]), sizes)
        plans.append(plan)
        if plan is not None:
            maps[number] = layout_map(layout_rows(plan.objects), size)
    return maps, plans
