"""Ray-cast rendering of a scene with numpy: exact perspective, occlusion, shading that shows the material.

Every pixel of an object's screen box casts a ray from one fixed camera and meets the object's
surface in closed form (sphere, cube, cylinder, cone; the torus by a few steps of sphere tracing),
so occlusion between objects is a z-buffer, not a guess, and the renderer knows which object each
pixel shows: the annotations' boxes and visible shares come from the same pass as the pixels.
Matte surfaces are Lambertian; metal ones darker in diffuse light with a sharp highlight and the
floor and sky reflected at grazing angles, so the two materials differ visibly.

The camera looks down at 38 degrees on the floor square [-3, 3] x [-3, 3] (world units; y is up,
z away from the camera). `antialias` renders k times larger and averages k x k blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .vocabulary import PALETTE, SIZE_RADIUS

ELEVATION = math.radians(38.0)
DISTANCE = 8.6
FOCAL = 1.05  # focal length in units of the image width
LIGHT = np.array([-0.55, 0.75, -0.38], dtype=np.float32) / np.linalg.norm([-0.55, 0.75, -0.38])
_FORWARD = np.array([0.0, -math.sin(ELEVATION), math.cos(ELEVATION)], dtype=np.float32)
_UP = np.array([0.0, math.cos(ELEVATION), math.sin(ELEVATION)], dtype=np.float32)
_RIGHT = np.array([1.0, 0.0, 0.0], dtype=np.float32)
_TARGET = np.array([0.0, 0.0, 0.25], dtype=np.float32)
CAMERA = _TARGET - DISTANCE * _FORWARD
FLOOR = 0.62  # floor brightness


@dataclass(frozen=True)
class Solid:
    """An object's geometry: what the renderer needs (position on the floor, shape, size, material, colour)."""

    shape: str
    x: float
    z: float
    radius: float  # footprint radius on the floor
    rotation: float  # radians about the vertical axis (cubes)
    colour: tuple[float, float, float]
    metal: bool

    @property
    def height(self) -> float:
        return {"sphere": 2 * self.radius, "cube": 2 * _cube_half(self.radius), "cylinder": 1.7 * self.radius,
                "cone": 1.9 * self.radius, "torus": 2 * _torus_tube(self.radius)}[self.shape]


def _cube_half(radius: float) -> float:
    return radius / math.sqrt(2.0)


def _torus_tube(radius: float) -> float:
    return 0.3 * radius


def solid(shape: str, size: str, colour: str, material: str, x: float, z: float, rotation: float = 0.0) -> Solid:
    rgb = tuple(c / 255.0 for c in PALETTE[colour])
    return Solid(shape, float(x), float(z), SIZE_RADIUS[size], float(rotation), rgb, material == "metal")


def project(points: np.ndarray, width: int) -> np.ndarray:
    """World points (n, 3) -> pixel coordinates (n, 2) as (column, row), and the depth along the view."""
    v = points - CAMERA
    depth = v @ _FORWARD
    f = FOCAL * width
    col = width / 2 + f * (v @ _RIGHT) / depth
    row = width / 2 - f * (v @ _UP) / depth
    return np.stack([col, row, depth], axis=1)


@lru_cache(maxsize=4)
def _rays(width: int) -> np.ndarray:
    """Unit ray direction through each pixel centre, (width, width, 3) float32."""
    f = FOCAL * width
    centres = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / f
    d = (_FORWARD[None, None, :] + centres[None, :, None] * _RIGHT[None, None, :]
         - centres[:, None, None] * _UP[None, None, :])
    return (d / np.linalg.norm(d, axis=2, keepdims=True)).astype(np.float32)


def place_from_box(box: tuple[float, float, float, float], width: int, radius: float,
                   height: float) -> tuple[float, float, float]:
    """Where an object of footprint `radius` and `height` stands, from its box in a width-wide
    picture: (x, z) on the floor and the depth of its centre along the view. The camera is known,
    so the ray under the middle of the box's bottom edge meets the floor at the footprint's front;
    the centre lies `radius` further from the camera. What turns a detector's boxes into places."""
    x0, _, x1, y1 = box
    f = FOCAL * width
    d = _FORWARD + (((x0 + x1) / 2 - width / 2) / f) * _RIGHT - ((y1 - width / 2) / f) * _UP
    t = -CAMERA[1] / min(float(d[1]), -1e-6)
    front = CAMERA + t * d
    away = np.array([d[0], 0.0, d[2]], dtype=np.float32)
    centre = front + radius * away / max(float(np.linalg.norm(away)), 1e-6)
    centre[1] = height / 2
    return float(centre[0]), float(centre[2]), float((centre - CAMERA) @ _FORWARD)


@lru_cache(maxsize=4)
def _floor(width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel's ray meets the floor (x, z), and the floor's shade there (lit, fading with distance)."""
    d = _rays(width)
    t = -CAMERA[1] / np.minimum(d[..., 1], -1e-6)
    x, z = CAMERA[0] + t * d[..., 0], CAMERA[2] + t * d[..., 2]
    shade = FLOOR * (1.08 - 0.012 * t) * (1.0 - 0.03 * np.tanh(x / 4))
    return x.astype(np.float32), z.astype(np.float32), shade.astype(np.float32)


_CORNERS = np.array([[dx, y, dz] for dx in (-1, 1) for dz in (-1, 1) for y in (0, 1)], dtype=np.float32)


def screen_boxes(solids: list[Solid], width: int, pad: int = 2, clip: bool = True) -> np.ndarray:
    """Each solid's box on screen (row0, row1, col0, col1), clipped unless `clip` is false: its bounding
    prism's 8 corners projected, so the silhouette lies inside."""
    if not solids:
        return np.zeros((0, 4), dtype=np.int64)
    feet = np.array([[s.x, 0.0, s.z] for s in solids], dtype=np.float32)
    extent = np.array([[s.radius, s.height, s.radius] for s in solids], dtype=np.float32)
    corners = feet[:, None, :] + _CORNERS[None, :, :] * extent[:, None, :]
    p = project(corners.reshape(-1, 3), width).reshape(len(solids), 8, 3)
    c0 = np.floor(p[..., 0].min(axis=1)) - pad
    c1 = np.ceil(p[..., 0].max(axis=1)) + pad
    r0 = np.floor(p[..., 1].min(axis=1)) - pad
    r1 = np.ceil(p[..., 1].max(axis=1)) + pad
    boxes = np.stack([r0, r1, c0, c1], axis=1)
    return (np.clip(boxes, 0, width) if clip else boxes).astype(np.int64)


def _hit(s: Solid, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray (inf: missed) and the unit surface normal there; d is (m, 3)."""
    o = CAMERA - np.array([s.x, 0.0, s.z], dtype=np.float32)  # ray origin relative to the object's foot
    return _INTERSECT[s.shape](s, o, d)


def _sphere(s: Solid, o: np.ndarray, d: np.ndarray):
    oc = o - np.array([0.0, s.radius, 0.0], dtype=np.float32)
    b = d @ oc
    disc = b * b - (oc @ oc - s.radius ** 2)
    t = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    n = (oc[None, :] + t[:, None] * d) / s.radius
    return t, n


def _cube(s: Solid, o: np.ndarray, d: np.ndarray):
    a = _cube_half(s.radius)
    c, sn = math.cos(s.rotation), math.sin(s.rotation)
    rot = np.array([[c, 0, -sn], [0, 1, 0], [sn, 0, c]], dtype=np.float32)  # world -> cube frame
    ol = rot @ (o - np.array([0.0, a, 0.0], dtype=np.float32))
    dl = d @ rot.T
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dl
        t1, t2 = (-a - ol) * inv, (a - ol) * inv
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = np.argmax(near, axis=1)
    tn, tf = near.max(axis=1), far.min(axis=1)
    t = np.where((tf >= tn) & (tn > 0), tn, np.inf)
    nl = np.zeros_like(dl)
    rows = np.arange(len(d))
    nl[rows, axis] = -np.sign(dl[rows, axis])
    return t, nl @ rot  # back to the world frame


def _cylinder(s: Solid, o: np.ndarray, d: np.ndarray):
    r, h = s.radius * 0.85, s.height
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (o[0] * d[:, 0] + o[2] * d[:, 2])
    c = o[0] ** 2 + o[2] ** 2 - r * r
    disc = b * b - 4 * a * c
    side = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    y = o[1] + side * d[:, 1]
    side = np.where((y >= 0) & (y <= h), side, np.inf)
    top = (h - o[1]) / d[:, 1]
    px, pz = o[0] + top * d[:, 0], o[2] + top * d[:, 2]
    top = np.where(px * px + pz * pz <= r * r, top, np.inf)
    t = np.minimum(side, top)
    p = o[None, :] + np.where(np.isfinite(t), t, 0)[:, None] * d
    n = np.where((top <= side)[:, None], np.array([0.0, 1.0, 0.0], dtype=np.float32),
                 np.stack([p[:, 0] / r, np.zeros_like(t), p[:, 2] / r], axis=1))
    return t, n


def _cone(s: Solid, o: np.ndarray, d: np.ndarray):
    r, h = s.radius * 0.9, s.height
    k2 = (r / h) ** 2
    w = h - o[1]
    a = d[:, 0] ** 2 + d[:, 2] ** 2 - k2 * d[:, 1] ** 2
    b = 2 * (o[0] * d[:, 0] + o[2] * d[:, 2] + k2 * w * d[:, 1])
    c = o[0] ** 2 + o[2] ** 2 - k2 * w * w
    disc = b * b - 4 * a * c
    root = np.sqrt(np.maximum(disc, 0))
    best = np.full(len(d), np.inf, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in ((-b - root) / (2 * a), (-b + root) / (2 * a)):
            y = o[1] + t * d[:, 1]
            ok = (disc >= 0) & (t > 0) & (y >= 0) & (y <= h)
            best = np.where(ok & (t < best), t, best)
    p = o[None, :] + np.where(np.isfinite(best), best, 0)[:, None] * d
    n = np.stack([p[:, 0], k2 * (h - p[:, 1]), p[:, 2]], axis=1)
    return best, n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-6)


def _torus(s: Solid, o: np.ndarray, d: np.ndarray):
    tube = _torus_tube(s.radius)
    ring = s.radius - tube
    oc = o - np.array([0.0, tube, 0.0], dtype=np.float32)
    b = d @ oc
    disc = b * b - (oc @ oc - s.radius ** 2)
    t = np.full(len(d), np.inf, dtype=np.float32)
    n = np.zeros_like(d)
    live = np.flatnonzero(disc >= 0)  # rays that enter the bounding sphere
    dl = d[live]
    # Start where the ray enters both the bounding sphere and the slab the ring lies in.
    step = np.maximum(-b[live] - np.sqrt(disc[live]), (tube - oc[1]) / dl[:, 1])
    for _ in range(14):  # sphere tracing: step by the distance to the surface
        p = oc[None, :] + step[:, None] * dl
        q = np.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2) - ring
        step = step + (np.sqrt(q * q + p[:, 1] ** 2) - tube)
    p = oc[None, :] + step[:, None] * dl
    radial = np.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2)
    q = radial - ring
    close = np.abs(np.sqrt(q * q + p[:, 1] ** 2) - tube) < 2e-3 * s.radius + 1e-3
    t[live[close]] = step[close]
    scale = ring / np.maximum(radial, 1e-6)
    normal = np.stack([p[:, 0] * (1 - scale), p[:, 1], p[:, 2] * (1 - scale)], axis=1)
    n[live] = normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-6)
    return t, n


_INTERSECT = {"sphere": _sphere, "cube": _cube, "cylinder": _cylinder, "cone": _cone, "torus": _torus}


def _shade(d: np.ndarray, n: np.ndarray, base: np.ndarray, metal: np.ndarray) -> np.ndarray:
    """Colours of surface points seen along rays d with normals n, all objects at once (deferred shading)."""
    diffuse = np.clip(n @ LIGHT, 0, 1)[:, None]
    half = LIGHT[None, :] - d
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    facing = np.clip(np.einsum("ij,ij->i", n, half), 0, 1)[:, None]
    matte = base * (0.3 + 0.75 * diffuse)
    cosine = np.einsum("ij,ij->i", d, n)[:, None]
    reflected_up = np.clip(d[:, 1:2] - 2 * cosine * n[:, 1:2], -1, 1)
    # a studio: bright sky above a sharp horizon, the grey floor below it
    environment = np.where(reflected_up > 0.05, 0.85 + 0.15 * reflected_up, 0.22)
    fresnel = 0.8 + 0.2 * (1 - np.clip(-cosine, 0, 1)) ** 3
    shiny = (base * (0.05 + 0.2 * diffuse) + fresnel * environment * (0.1 + 0.9 * base)
             + 0.2 * facing ** 8 + 1.2 * facing ** 60)
    return np.where(metal[:, None], shiny, matte)


def _shadows(floor: np.ndarray, solids: list[Solid], width: int) -> None:
    """Soft contact shadows on the floor, cast away from the light (one Gaussian stamp per object)."""
    if not solids:
        return
    fx, fz, _ = _floor(width)
    lean = np.array([s.height * 0.35 for s in solids], dtype=np.float32)
    centre = np.array([[s.x, 0.0, s.z] for s in solids], dtype=np.float32)
    centre[:, 0] -= LIGHT[0] / LIGHT[1] * lean
    centre[:, 2] -= LIGHT[2] / LIGHT[1] * lean
    reach = np.array([s.radius * 2.2 for s in solids], dtype=np.float32)
    corners = centre[:, None, :] + np.array([[-1, 0, -1], [-1, 0, 1], [1, 0, -1], [1, 0, 1]],
                                            dtype=np.float32)[None] * reach[:, None, None]
    p = project(corners.reshape(-1, 3), width).reshape(len(solids), 4, 3)
    lo = np.clip(np.floor(p[..., :2].min(axis=1)), 0, width).astype(int)
    hi = np.clip(np.ceil(p[..., :2].max(axis=1)) + 1, 0, width).astype(int)
    for s, (cx, _, cz), (c0, r0), (c1, r1) in zip(solids, centre, lo, hi):
        if c0 < c1 and r0 < r1:
            dist2 = (fx[r0:r1, c0:c1] - cx) ** 2 + (fz[r0:r1, c0:c1] - cz) ** 2
            floor[r0:r1, c0:c1] *= 1 - 0.45 * np.exp(dist2 * (-1.0 / (s.radius * 0.95) ** 2))


def _smooth_edges(image: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Cheap anti-aliasing: where neighbouring pixels show different things, blend with a 3 x 3 mean."""
    height, width = owner.shape
    edge = np.zeros((height + 2, width + 2), dtype=bool)  # padded by one pixel all round
    inner = edge[1:-1, 1:-1]
    inner[:, 1:] |= owner[:, 1:] != owner[:, :-1]
    inner[1:, :] |= owner[1:, :] != owner[:-1, :]
    at = np.flatnonzero(edge)
    if not len(at):
        return image
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge").reshape(-1, 3)
    stride = width + 2
    mean = sum(padded[at + di * stride + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1)) / 9.0
    padded[at] = 0.5 * padded[at] + 0.5 * mean
    return padded.reshape(height + 2, width + 2, 3)[1:-1, 1:-1]


@dataclass
class Rendering:
    """The picture and what each object became in it (pixel measures at the output size)."""

    image: np.ndarray  # (size, size, 3) uint8
    boxes: list[tuple[float, float, float, float]]  # each object's whole silhouette: x0, y0, x1, y1
    visible: list[float]  # share of each object's silhouette not hidden by others
    pixels: list[float]  # visible area of each object, in output pixels
    depth: list[float]  # distance of each object's centre from the camera along the view
    centre_x: list[float]  # column of each object's centre
    owner: np.ndarray  # (size, size) int16: which object each pixel shows (-1: the floor), sampled at the output size


def render(solids: list[Solid], size: int = 128, antialias: int = 1) -> Rendering:
    """Draw `solids` on the floor.

    `antialias` k > 1 renders at k x size and averages k x k blocks (about k^2 times slower); 1 smooths
    only the pixels on an outline, which costs little.
    """
    width = size * antialias
    rays = _rays(width)
    floor = _floor(size)[2].copy()  # shadows vary slowly: drawn at the output size, then enlarged
    _shadows(floor, solids, size)
    if antialias > 1:
        floor = np.repeat(np.repeat(floor, antialias, axis=0), antialias, axis=1)
    image = np.repeat(floor[..., None], 3, axis=2)
    zbuf = np.full((width, width), np.inf, dtype=np.float32)
    owner = np.full((width, width), -1, dtype=np.int16)
    normals = np.zeros((width * width, 3), dtype=np.float32)
    own_area, boxes = [], []
    for number, (s, (r0, r1, c0, c1)) in enumerate(zip(solids, screen_boxes(solids, width))):
        box, area = (0.0, 0.0, 0.0, 0.0), 0
        if r0 < r1 and c0 < c1:
            d = rays[r0:r1, c0:c1].reshape(-1, 3)
            t, n = _hit(s, d)
            t = t.reshape(r1 - r0, c1 - c0)
            grid = t < np.inf
            rows, cols = np.flatnonzero(grid.any(axis=1)), np.flatnonzero(grid.any(axis=0))
            if len(rows):
                area = int(grid.sum())
                box = tuple(float(v) / antialias for v in (c0 + cols[0], r0 + rows[0], c0 + cols[-1] + 1, r0 + rows[-1] + 1))
                depth = zbuf[r0:r1, c0:c1]  # views: writing to them writes the buffers
                front = t < depth
                depth[front] = t[front]
                owner[r0:r1, c0:c1][front] = number
                local = np.flatnonzero(front)
                normals[(r0 + local // (c1 - c0)) * width + c0 + local % (c1 - c0)] = n[local]
        own_area.append(area)
        boxes.append(box)
    flat_owner = owner.reshape(-1)
    seen = np.flatnonzero(flat_owner >= 0)
    if len(seen):
        which = flat_owner[seen]
        base = np.array([s.colour for s in solids], dtype=np.float32)[which]
        metal = np.array([s.metal for s in solids], dtype=bool)[which]
        image.reshape(-1, 3)[seen] = _shade(rays.reshape(-1, 3)[seen], normals[seen], base, metal)
    counts = np.bincount(flat_owner[seen], minlength=len(solids))
    if antialias > 1:
        image = sum(image[i::antialias, j::antialias] for i in range(antialias) for j in range(antialias))
        image = image / antialias ** 2
    else:
        image = _smooth_edges(image, owner)
    pixels = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    centres = project(np.array([[s.x, s.height / 2, s.z] for s in solids], dtype=np.float32).reshape(-1, 3), width)
    return Rendering(
        image=pixels, boxes=boxes,
        visible=[float(c / a) if a else 0.0 for c, a in zip(counts, own_area)],
        pixels=[float(c) / antialias ** 2 for c in counts],
        depth=[float(v) for v in centres[:, 2]], centre_x=[float(v) / antialias for v in centres[:, 0]],
        owner=owner[antialias // 2::antialias, antialias // 2::antialias].copy(),
    )
