"""The world's attributes, their words, and the compositional conditions: named once, used everywhere.

Attribute values are the canonical names stored in annotations and used as VQA answers; the
synonyms are the other words captions and questions may use for the same value ("ball" for a
sphere, "shiny" for metal), so a scorer maps any of them back (`canonical`). The palette is
CLEVR's eight colours (Johnson et al. 2017), so figures compare with that literature.
"""
from __future__ import annotations

import re
from enum import Enum


class Attribute(str, Enum):
    """What an object has, and what a question can ask about."""

    SHAPE = "shape"
    COLOUR = "colour"
    SIZE = "size"
    MATERIAL = "material"


SHAPES = ("cube", "sphere", "cylinder", "cone", "torus")
COLOURS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
SIZES = ("small", "large")
MATERIALS = ("matte", "metal")

VALUES: dict[Attribute, tuple[str, ...]] = {
    Attribute.SHAPE: SHAPES, Attribute.COLOUR: COLOURS, Attribute.SIZE: SIZES, Attribute.MATERIAL: MATERIALS,
}
# Order of words before the noun: "two small red metal cubes".
ADJECTIVE_ORDER = (Attribute.SIZE, Attribute.COLOUR, Attribute.MATERIAL)

PALETTE: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
    "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208), "yellow": (255, 238, 51),
}

# Radius of the object's footprint on the ground, in world units (CLEVR: 0.7 large, 0.35 small).
SIZE_RADIUS = {"small": 0.4, "large": 0.7}

SYNONYMS: dict[str, tuple[str, ...]] = {
    "cube": ("cube", "block"), "sphere": ("sphere", "ball"), "cylinder": ("cylinder",), "cone": ("cone",),
    "torus": ("torus", "ring"), "small": ("small", "tiny"), "large": ("large", "big"),
    "matte": ("matte", "rubber"), "metal": ("metal", "shiny", "metallic"),
    **{colour: (colour,) for colour in COLOURS},
}
PLURALS = {"cube": "cubes", "block": "blocks", "sphere": "spheres", "ball": "balls", "cylinder": "cylinders",
           "cone": "cones", "torus": "tori", "ring": "rings", "thing": "things", "object": "objects"}
GENERIC_NOUNS = ("thing", "object")

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

CANNOT_TELL = "cannot tell"
YES, NO = "yes", "no"
MAX_OBJECTS = 10
# Every answer a question of the world can have, in a fixed order (a VQA model's classes).
ANSWERS: tuple[str, ...] = (YES, NO, *[str(n) for n in range(MAX_OBJECTS + 1)], *SHAPES, *COLOURS, *SIZES,
                            *MATERIALS, CANNOT_TELL)


class Condition(str, Enum):
    """Which shape may wear which colour (CLEVR-CoGenT, Johnson et al. 2017): train on A, test on B.

    In A cubes are gray, blue, brown or yellow and cylinders red, green, purple or cyan; B swaps the
    two colour sets. The other shapes take any colour in both. ALL has no restriction (plain CLEVR).
    """

    A = "A"
    B = "B"
    ALL = "all"


_FIRST, _SECOND = ("gray", "blue", "brown", "yellow"), ("red", "green", "purple", "cyan")
CONDITION_COLOURS: dict[Condition, dict[str, tuple[str, ...]]] = {
    Condition.A: {"cube": _FIRST, "cylinder": _SECOND},
    Condition.B: {"cube": _SECOND, "cylinder": _FIRST},
    Condition.ALL: {},
}


def colours_for(shape: str, condition: Condition) -> tuple[str, ...]:
    """The colours `shape` may have under `condition`."""
    return CONDITION_COLOURS[condition].get(shape, COLOURS)


def canonical(word: str) -> str | None:
    """The attribute value a word names ("ball" -> "sphere", "balls" -> "sphere"), or None."""
    word = word.lower()
    singular = next((one for one, many in PLURALS.items() if many == word), word)
    for value, words in SYNONYMS.items():
        if singular in words:
            return value
    return None


def attribute_of(value: str) -> Attribute:
    """Which attribute a canonical value belongs to ("red" -> COLOUR)."""
    for attribute, values in VALUES.items():
        if value in values:
            return attribute
    raise KeyError(value)


_WORD = re.compile(r"[a-z0-9]+|[,:]")


def words_of(text: str) -> list[str]:
    """Lower-case words and the punctuation the world's sentences use (",", ":"); what the
    captioner and the question parser read. Anything else (other scripts, "?") is dropped."""
    return _WORD.findall(text.lower())
