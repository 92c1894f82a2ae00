"""Spatial relations between two objects, decided only when the picture makes them clear.

"Left of" compares the objects' centres in the picture, "in front of" their distance from the
camera; a pair closer than the margin on that axis has no stated relation, so no caption or
question ever hangs on a pixel.
"""
from __future__ import annotations

from enum import Enum

from .scene import WorldObject

LEFT_MARGIN = 0.04  # share of the picture's width two centres must differ by to be left / right of each other
DEPTH_MARGIN = 0.35  # world units two objects' depths must differ by to be in front of / behind each other


class Relation(str, Enum):
    LEFT = "left"
    RIGHT = "right"
    FRONT = "front"
    BEHIND = "behind"


def relation_holds(a: WorldObject, b: WorldObject, relation: Relation, width: int) -> bool | None:
    """True / False when the relation of `a` to `b` is clear; None when they are too close to say."""
    if relation in (Relation.LEFT, Relation.RIGHT):
        gap = a.centre_x - b.centre_x
        if abs(gap) < LEFT_MARGIN * width:
            return None
        return gap < 0 if relation == Relation.LEFT else gap > 0
    gap = a.depth - b.depth
    if abs(gap) < DEPTH_MARGIN:
        return None
    return gap < 0 if relation == Relation.FRONT else gap > 0
