"""Scenes of the world: objects with exact attributes and positions, sampled from a seed, rendered once.

A scene is a pure function of (seed, index, options): `generate_scene(seed, 7)` is the same scene
on every machine, so a dataset can be rebuilt or extended without storing anything but its
parameters. Objects stand on the floor square [-3, 3] x [-3, 3] without touching one another,
wholly inside the picture, and each keeps at least `min_visible` of its silhouette in view
(occlusion happens, but no object is hidden so far that a question about it has no answer in the
pixels); a draw that breaks these rules is drawn again.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .render import Rendering, render, screen_boxes, solid
from .vocabulary import (MATERIALS, MAX_OBJECTS, SHAPES, SIZE_RADIUS, SIZES, Attribute, Condition, colours_for)

FLOOR_HALF = 3.0
_FIELD = {**{a: a.value for a in Attribute}, **{a.value: a.value for a in Attribute}}  # attribute -> field name
GAP = 0.12  # least floor distance between two objects' footprints


@dataclass
class WorldObject:
    """One object: its attributes (canonical values), where it stands, and what it became in the picture."""

    id: int
    shape: str
    colour: str
    size: str
    material: str
    position: tuple[float, float]  # (x, z) on the floor; x to the right, z away from the camera
    rotation: float = 0.0  # degrees about the vertical axis
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # silhouette in pixels: x0, y0, x1, y1
    visible: float = 1.0  # share of the silhouette not hidden by nearer objects
    depth: float = 0.0  # distance from the camera along its view: larger is further back
    centre_x: float = 0.0  # column of the object's centre in the picture: smaller is further left

    def value(self, attribute: Attribute | str) -> str:
        return getattr(self, _FIELD[attribute])

    def matches(self, description: Mapping[Attribute, str]) -> bool:
        """Whether the object has every attribute value of `description` (empty: any object)."""
        for attribute, value in description.items():
            if getattr(self, _FIELD[attribute]) != value:
                return False
        return True

    def to_json(self) -> dict:
        return {"id": self.id, "shape": self.shape, "colour": self.colour, "size": self.size,
                "material": self.material, "position": [round(v, 4) for v in self.position],
                "rotation": round(self.rotation, 4), "box": [round(v, 2) for v in self.box],
                "visible": round(self.visible, 4), "depth": round(self.depth, 4), "centre_x": round(self.centre_x, 4)}

    @classmethod
    def from_json(cls, data: Mapping) -> "WorldObject":
        values = dict(data)
        values["position"] = tuple(values["position"])
        values["box"] = tuple(values["box"])
        return cls(**values)


@dataclass(frozen=True)
class SceneOptions:
    """What kind of scenes to draw: picture size, how many objects, which colours a shape may wear."""

    size: int = 128
    min_objects: int = 3
    max_objects: int = MAX_OBJECTS
    condition: Condition = Condition.ALL
    antialias: int = 1
    min_visible: float = 0.35  # least share of each silhouette left in view
    min_pixels: float = 18.0  # least visible area of each object, in pixels at size 128 (scaled with size)
    sizes: tuple[str, ...] = SIZES  # the object sizes drawn (("large",) keeps shapes readable in small pictures)

    def __post_init__(self):
        if not 32 <= self.size <= 512:
            raise ValueError(f"size: {self.size} px is outside 32-512")
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise ValueError(f"objects: need 1 <= min ({self.min_objects}) <= max ({self.max_objects}) <= {MAX_OBJECTS}")
        if not 1 <= self.antialias <= 4:
            raise ValueError(f"antialias: {self.antialias} is outside 1-4")
        if not self.sizes or not set(self.sizes) <= set(SIZES):
            raise ValueError(f"sizes: some of {', '.join(SIZES)}, got {self.sizes}")


@dataclass
class Scene:
    """A scene's exact content; `index` and `seed` regenerate it, `condition` says which colour rules it obeys."""

    index: int
    seed: int
    condition: Condition
    size: int
    objects: list[WorldObject] = field(default_factory=list)

    def matching(self, description: Mapping[Attribute, str]) -> list[WorldObject]:
        return [o for o in self.objects if o.matches(description)]

    def to_json(self) -> dict:
        return {"scene": self.index, "seed": self.seed, "condition": self.condition.value, "size": self.size,
                "objects": [o.to_json() for o in self.objects]}

    @classmethod
    def from_json(cls, data: Mapping) -> "Scene":
        return cls(int(data["scene"]), int(data["seed"]), Condition(data["condition"]), int(data["size"]),
                   [WorldObject.from_json(o) for o in data["objects"]])


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of scene `index` of a dataset seeded `seed`, independent of every other scene."""
    return np.random.default_rng([int(seed), int(index)])


def _choose(options: tuple[str, ...], u: float) -> str:
    return options[min(int(u * len(options)), len(options) - 1)]


def free_spot(rng: np.random.Generator, radius: float, placed: list[WorldObject],
              tries: int = 40) -> tuple[float, float] | None:
    """A floor position for a footprint of RADIUS that keeps GAP from every PLACED object (None after TRIES draws)."""
    for _ in range(tries):
        x, z = rng.uniform(-FLOOR_HALF + radius, FLOOR_HALF - radius, size=2)
        if all(math.hypot(x - o.position[0], z - o.position[1]) >= radius + SIZE_RADIUS[o.size] + GAP
               for o in placed):
            return float(x), float(z)
    return None


def _draw_objects(rng: np.random.Generator, count: int, condition: Condition,
                  sizes: tuple[str, ...] = SIZES) -> list[WorldObject] | None:
    objects: list[WorldObject] = []
    draws = rng.random((count, 4))  # shape, size, colour, material
    for number in range(count):
        shape, size = _choose(SHAPES, draws[number, 0]), _choose(sizes, draws[number, 1])
        spot = free_spot(rng, SIZE_RADIUS[size], objects)
        if spot is None:
            return None
        x, z = spot
        objects.append(WorldObject(
            id=number, shape=shape, colour=_choose(colours_for(shape, condition), draws[number, 2]), size=size,
            material=_choose(MATERIALS, draws[number, 3]), position=(x, z),
            rotation=float(rng.uniform(0, 90)) if shape == "cube" else 0.0))
    return objects


def _acceptable(objects: list[WorldObject], drawn: Rendering, options: SceneOptions) -> bool:
    least = options.min_pixels * (options.size / 128) ** 2
    for obj, box, visible, pixels in zip(objects, drawn.boxes, drawn.visible, drawn.pixels):
        x0, y0, x1, y1 = box
        if x0 <= 0 or y0 <= 0 or x1 >= options.size or y1 >= options.size:  # cut by the picture's edge
            return False
        if visible < options.min_visible or pixels < least:
            return False
    return True


def solids_of(objects: list[WorldObject]):
    return [solid(o.shape, o.size, o.colour, o.material, *o.position, math.radians(o.rotation)) for o in objects]


def render_scene(scene: Scene, size: int | None = None, antialias: int = 1) -> Rendering:
    """Draw a scene from its annotations, at its own size or another (the geometry is in world units):
    the picture, and which object each pixel shows."""
    return render(solids_of(scene.objects), size or scene.size, antialias)


def place_objects(objects: list[WorldObject], rng: np.random.Generator, options: SceneOptions,
                  accept=None, attempts: int = 200) -> Scene | None:
    """A scene of the given OBJECTS (attributes set, positions not) placed at random under the rules
    `generate_scene` keeps (no touching, nothing cut by the edge, enough of each in view) and, when
    given, ACCEPT(objects) -> bool (e.g. "the red one left of the blue one"); None when no draw fits.
    What a layout planner needs: where things may stand, measured by the same renderer."""
    for _ in range(attempts):
        placed: list[WorldObject] = []
        for obj in objects:
            spot = free_spot(rng, SIZE_RADIUS[obj.size], placed)
            if spot is None:
                break
            placed.append(WorldObject(id=obj.id, shape=obj.shape, colour=obj.colour, size=obj.size,
                                      material=obj.material, position=spot,
                                      rotation=float(rng.uniform(0, 90)) if obj.shape == "cube" else 0.0))
        if len(placed) < len(objects):
            continue
        solids = solids_of(placed)
        boxes = screen_boxes(solids, options.size, pad=0, clip=False)
        if boxes.min() < 1 or boxes.max() > options.size - 1:
            continue
        drawn = render(solids, options.size, options.antialias)
        if not _acceptable(placed, drawn, options):
            continue
        for obj, box, visible, depth, centre_x in zip(placed, drawn.boxes, drawn.visible, drawn.depth, drawn.centre_x):
            obj.box, obj.visible, obj.depth, obj.centre_x = box, visible, depth, centre_x
        if accept is None or accept(placed):
            return Scene(-1, -1, options.condition, options.size, placed)
    return None


def generate_scene(seed: int, index: int, options: SceneOptions = SceneOptions()) -> tuple[Scene, np.ndarray]:
    """Scene `index` of the dataset seeded `seed`, and its picture ((size, size, 3) uint8)."""
    rng = scene_rng(seed, index)
    count = int(rng.integers(options.min_objects, options.max_objects + 1))
    for attempt in range(200):
        objects = _draw_objects(rng, count, options.condition, tuple(options.sizes))
        if objects is None:
            continue
        solids = solids_of(objects)
        boxes = screen_boxes(solids, options.size, pad=0, clip=False)
        if boxes.min() < 1 or boxes.max() > options.size - 1:
            continue  # some object would be cut by the picture's edge: no need to draw it to know
        drawn = render(solids, options.size, options.antialias)
        if _acceptable(objects, drawn, options):
            for obj, box, visible, depth, centre_x in zip(objects, drawn.boxes, drawn.visible, drawn.depth,
                                                          drawn.centre_x):
                obj.box, obj.visible, obj.depth, obj.centre_x = box, visible, depth, centre_x
            return Scene(index, int(seed), options.condition, options.size, objects), drawn.image
        if attempt % 20 == 19 and count > options.min_objects:
            count -= 1  # a crowded floor keeps failing: one object fewer
    raise RuntimeError(f"scene {index} (seed {seed}): no acceptable placement of {count} objects")
