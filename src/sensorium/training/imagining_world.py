"""The procedural world's scenes as text-to-image training data (`imagine.data = "world"`).

Scenes of one or two objects are drawn on the spot (`sensorium.world`, no files), and each is
paired with prompts that are true of it by construction: "a large red metal cube", "a blue
sphere to the left of a small yellow cone", "a picture of a green ring and a brown cylinder". A
relation is said only when the picture makes it clear (`world.relations`), colour and shape are
always named, material now and then, and size now and then when the scenes mix sizes (with one
size, naming it would teach nothing).

Scenes follow a colour condition, as in CLEVR's CoGenT: under A, cubes are never red, green,
purple or cyan and cylinders never gray, blue, brown or yellow; B swaps the two. A model trained
on A and asked for a red cube is asked for a combination it never saw (`held_out_combinations`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..world import Condition, SceneOptions, generate_scene
from ..world.language import RELATION_WORDS, article, describe, noun_phrase
from ..world.layout import LAYOUT_FIELDS, MAX_LAYOUT_OBJECTS, layout_rows
from ..world.relations import Relation, relation_holds
from ..world.scene import Scene, WorldObject
from ..world.vocabulary import COLOURS, SHAPES, Attribute, colours_for

WORLD_SOURCE = "world"  # imagine.data: scenes drawn on the spot ...
WORLD_PROMPTS = "world"  # ... and imagine.prompts: each scene's own true prompts
TEMPLATES = ("{}", "{}", "a picture of {}", "a scene with {}")
OPTIONAL = (Attribute.SIZE, Attribute.MATERIAL)  # named half of the time each; colour and shape always


@dataclass
class WorldPictures:
    """Training scenes and, for each, the prompts that may stand for it."""

    images: np.ndarray  # (N, size, size, 3) uint8
    prompts: list[list[str]]  # per scene
    concepts: list[str]  # "red cube", ...: the colour-shape combinations the model may be asked for
    known: list[str]  # the single-object prompts a warning compares with ...
    known_concepts: list[int]  # ... and the concept of each
    condition: str
    layouts: np.ndarray  # (N, MAX_LAYOUT_OBJECTS, len(LAYOUT_FIELDS)) each scene's objects and boxes (`world.layout`)


def combinations() -> list[tuple[str, str]]:
    """Every (colour, shape) the world has, shapes first."""
    return [(colour, shape) for shape in SHAPES for colour in COLOURS]


def held_out_combinations(condition: Condition | str) -> list[tuple[str, str]]:
    """(colour, shape) pairs no scene of CONDITION shows: what a model trained on it never saw."""
    condition = Condition(condition)
    return [(c, s) for c, s in combinations() if c not in colours_for(s, condition)]


def check_world_settings(settings) -> None:
    """The world fields of an [imagine] table (SETTINGS: an ImagineTraining), checked by the world's own
    types; ConfigError names the field."""
    if settings.channels != 3 or settings.image_size != settings.size:
        raise ConfigError("imagine.channels: the world's scenes are RGB (channels = 3) at image_size = size")
    if settings.scenes <= 0:
        raise ConfigError(f"imagine.scenes: must be positive, got {settings.scenes}")
    try:
        condition = Condition(settings.condition)
    except ValueError:
        raise ConfigError(f"imagine.condition: one of {', '.join(c.value for c in Condition)}, "
                          f"got {settings.condition!r}") from None
    try:
        SceneOptions(size=settings.size, min_objects=1, max_objects=2, condition=condition,
                     sizes=tuple(settings.object_sizes))
    except ValueError as error:
        field = "object_sizes" if str(error).startswith("sizes:") else "size"
        raise ConfigError(f"imagine.{field}: {str(error).split(': ', 1)[-1]}") from None


def object_phrase(obj: WorldObject, rng: random.Random, optional=OPTIONAL) -> str:
    """"a red cube", "a large red metal block": colour and shape always, the OPTIONAL attributes at random."""
    attributes = [Attribute.COLOUR, Attribute.SHAPE] + [a for a in optional if rng.random() < 0.5]
    return article(noun_phrase(describe(obj, attributes), rng))


def scene_prompt(scene: Scene, rng: random.Random, optional=OPTIONAL) -> str:
    """A prompt true of SCENE: its object, or its two objects and (when clear) how they stand."""
    if len(scene.objects) == 1:
        body = object_phrase(scene.objects[0], rng, optional)
    else:
        first, second = rng.sample(scene.objects, 2)
        clear = [r for r in Relation if relation_holds(first, second, r, scene.size)]
        joint = f"{RELATION_WORDS[rng.choice(clear)]}" if clear and rng.random() < 0.85 else "and"
        body = f"{object_phrase(first, rng, optional)} {joint} {object_phrase(second, rng, optional)}"
    return rng.choice(TEMPLATES).format(body)


def world_pictures(count: int, size: int, condition: str, seed: int, sizes: tuple[str, ...] = ("large",),
                   per_scene: int = 3, progress: bool = True) -> WorldPictures:
    """COUNT scenes of one or two objects of SIZES at SIZE px under CONDITION, PER_SCENE prompts each
    (a pure function of the seed, so a resumed run draws the same). Size is named only when
    there is more than one."""
    from rich.progress import Progress

    options = SceneOptions(size=size, min_objects=1, max_objects=2, condition=Condition(condition), sizes=tuple(sizes))
    optional = OPTIONAL if len(set(sizes)) > 1 else (Attribute.MATERIAL,)
    images = np.zeros((count, size, size, 3), dtype=np.uint8)
    layouts = np.zeros((count, MAX_LAYOUT_OBJECTS, len(LAYOUT_FIELDS)), dtype=np.float32)
    prompts: list[list[str]] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"drawing {count} world scenes", total=count)
        for index in range(count):
            scene, images[index] = generate_scene(seed, index, options)
            layouts[index] = layout_rows(scene.objects)
            rng = random.Random(f"{seed}:{index}")
            prompts.append(sorted({scene_prompt(scene, rng, optional) for _ in range(per_scene)}))
            bar.advance(task)
    concepts = [f"{colour} {shape}" for colour, shape in combinations()]
    known, owners = [], []
    for number, (colour, shape) in enumerate(combinations()):
        for text in (f"a {colour} {shape}", f"a picture of a {colour} {shape}"):
            known.append(text)
            owners.append(number)
    return WorldPictures(images, prompts, concepts, known, owners, condition, layouts)
