"""Procedurally generated "rooms" for tests, demos and fine-tuning smoke runs.

A room is drawn in rough one-point perspective: the back wall is the image frame
shrunk towards a vanishing point; ceiling, floor and side walls join it to the frame.
Windows, doors and pictures sit on the walls, furniture boxes stand on the floor
(far ones drawn first). Every surface has a class-typical random colour, smooth
texture noise, per-face shading, a ceiling light fall-off, a global exposure and
pixel noise. Everything is deterministic in ``seed``.

Label sets (``classes``):

- ``"indoor"``: the ten classes of :data:`~caffe2tf.segmentation.classes.INDOOR_CLASSES`
  (wall, floor, ceiling, window, door, bed, table, seating, storage, other);
- ``"simple"``: four classes (:data:`SIMPLE_CLASSES`: wall, floor, ceiling, furniture);
  windows, doors and pictures are left out.
"""
from __future__ import annotations

import colorsys
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from caffe2tf.segmentation.classes import INDOOR_CLASSES

__all__ = ["SIMPLE_CLASSES", "synthetic_room", "write_dataset", "class_names_for"]

log = logging.getLogger(__name__)

SIMPLE_CLASSES: tuple[str, ...] = ("wall", "floor", "ceiling", "furniture")

# (hue range, saturation range, value range) of each kind of surface, HSV in [0, 1].
_COLOURS: dict[str, tuple[tuple[float, float], ...]] = {
    "wall": ((0.0, 1.0), (0.05, 0.30), (0.62, 0.88)),
    "floor": ((0.04, 0.11), (0.40, 0.75), (0.30, 0.60)),
    "ceiling": ((0.0, 1.0), (0.0, 0.06), (0.88, 1.0)),
    "window": ((0.53, 0.62), (0.25, 0.55), (0.85, 1.0)),
    "door": ((0.05, 0.10), (0.45, 0.80), (0.22, 0.45)),
    "bed": ((0.0, 1.0), (0.15, 0.55), (0.70, 0.95)),
    "table": ((0.06, 0.10), (0.50, 0.80), (0.20, 0.45)),
    "seating": ((0.0, 1.0), (0.55, 0.95), (0.35, 0.80)),
    "storage": ((0.07, 0.12), (0.10, 0.45), (0.45, 0.85)),
    "other": ((0.0, 1.0), (0.60, 1.00), (0.50, 1.00)),
}
_SIMPLE_INDEX = {"wall": 0, "floor": 1, "ceiling": 2}


def class_names_for(classes: str) -> list[str]:
    """The class names of a label set: ``"indoor"`` or ``"simple"``."""
    if classes == "indoor":
        return list(INDOOR_CLASSES)
    if classes == "simple":
        return list(SIMPLE_CLASSES)
    raise ValueError(f"unknown synthetic label set {classes!r} (use 'indoor' or 'simple')")


class _Canvas:
    """Object-id drawing: each polygon gets an id with a class and an RGB colour."""

    def __init__(self, width: int, height: int, rng: np.random.Generator, classes: str) -> None:
        self.ids = Image.new("L", (width, height), 0)
        self.draw = ImageDraw.Draw(self.ids)
        self.rng = rng
        self.classes = classes
        self.labels: list[int] = []
        self.colours: list[np.ndarray] = []

    def colour(self, kind: str) -> np.ndarray:
        (h0, h1), (s0, s1), (v0, v1) = _COLOURS[kind]
        hsv = (self.rng.uniform(h0, h1), self.rng.uniform(s0, s1), self.rng.uniform(v0, v1))
        return np.array(colorsys.hsv_to_rgb(*hsv), dtype=np.float32) * 255.0

    def label(self, kind: str) -> int:
        if self.classes == "indoor":
            return INDOOR_CLASSES.index(kind)
        return _SIMPLE_INDEX.get(kind, 3)

    def polygon(self, points: Sequence[tuple[float, float]], kind: str, colour: np.ndarray,
                shade: float = 1.0) -> None:
        if len(self.labels) >= 255:
            return
        self.labels.append(self.label(kind))
        self.colours.append(np.clip(colour * shade, 0, 255))
        self.draw.polygon([(float(x), float(y)) for x, y in points], fill=len(self.labels))


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    gh, gw = max(2, height // cell + 2), max(2, width // cell + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    up = Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32)


def synthetic_room(size: int | tuple[int, int], seed: int | Sequence[int] = 0,
                   classes: str = "indoor") -> tuple[np.ndarray, np.ndarray]:
    """One room: ``(rgb uint8 [H, W, 3], labels uint8 [H, W])``.

    ``size`` is ``H`` (square) or ``(H, W)``; labels follow ``classes`` (module doc).
    """
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if height < 8 or width < 8:
        raise ValueError(f"room size must be at least 8x8, received {height}x{width}")
    class_names_for(classes)  # validates
    rng = np.random.default_rng(seed)
    c = _Canvas(width, height, rng, classes)
    w, h = float(width), float(height)

    # Room shell: the back wall is the frame shrunk by r towards the vanishing point.
    vp = np.array([rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.55) * h])
    r = rng.uniform(0.38, 0.6)
    frame = {k: np.array(p) for k, p in
             {"tl": (0, 0), "tr": (w, 0), "br": (w, h), "bl": (0, h)}.items()}
    back = {k: vp + r * (p - vp) for k, p in frame.items()}
    wall_rgb, ceil_rgb, floor_rgb = c.colour("wall"), c.colour("ceiling"), c.colour("floor")
    c.polygon([frame["tl"], frame["tr"], back["tr"], back["tl"]], "ceiling", ceil_rgb)
    c.polygon([frame["bl"], frame["br"], back["br"], back["bl"]], "floor", floor_rgb)
    c.polygon([frame["tl"], back["tl"], back["bl"], frame["bl"]], "wall", wall_rgb, 0.85)
    c.polygon([frame["tr"], back["tr"], back["br"], frame["br"]], "wall", wall_rgb, 0.92)
    c.polygon([back["tl"], back["tr"], back["br"], back["bl"]], "wall", wall_rgb)

    def wall_point(side: str, t: float, s: float) -> np.ndarray:
        """Point on a wall: depth t (0 front .. 1 back), height s (0 top .. 1 bottom)."""
        if side == "back":  # t is the horizontal position on the back wall here
            top = _lerp(back["tl"], back["tr"], t)
            return _lerp(top, _lerp(back["bl"], back["br"], t), s)
        f0, f1, b0, b1 = (("tl", "bl", "tl", "bl") if side == "left" else ("tr", "br", "tr", "br"))
        return _lerp(_lerp(frame[f0], frame[f1], s), _lerp(back[b0], back[b1], s), t)

    def wall_rect(side: str, t0: float, t1: float, s0: float, s1: float, kind: str,
                  shade: float = 1.0) -> None:
        pts = [wall_point(side, t0, s0), wall_point(side, t1, s0), wall_point(side, t1, s1),
               wall_point(side, t0, s1)]
        c.polygon(pts, kind, c.colour(kind), shade)

    if classes == "indoor":
        for _ in range(rng.integers(0, 3)):  # windows
            side = rng.choice(["back", "left", "right"])
            t0 = rng.uniform(0.1, 0.55)
            wall_rect(side, t0, t0 + rng.uniform(0.2, 0.35), rng.uniform(0.12, 0.3),
                      rng.uniform(0.55, 0.7), "window")
        if rng.random() < 0.7:  # door
            side = rng.choice(["back", "left", "right"])
            t0 = rng.uniform(0.05, 0.7)
            wall_rect(side, t0, t0 + rng.uniform(0.15, 0.25), rng.uniform(0.2, 0.35), 1.0, "door")
        if rng.random() < 0.5:  # picture
            t0 = rng.uniform(0.1, 0.6)
            wall_rect("back", t0, t0 + rng.uniform(0.15, 0.3), rng.uniform(0.15, 0.3),
                      rng.uniform(0.4, 0.55), "other")

    def floor_point(u: float, t: float) -> np.ndarray:
        return _lerp(_lerp(frame["bl"], frame["br"], u), _lerp(back["bl"], back["br"], u), t)

    def wall_height(t: float) -> float:
        return float(_lerp(np.array(h), back["bl"][1] - back["tl"][1], t))

    def box(u0: float, u1: float, t0: float, t1: float, height_frac: float, kind: str,
            colour: np.ndarray, lift: float = 0.0) -> None:
        """A box on the floor (or lifted by ``lift`` of the wall height)."""
        def p(u: float, t: float, z: float) -> np.ndarray:
            return floor_point(u, t) - np.array([0.0, z * wall_height(t)])
        z0, z1 = lift, lift + height_frac
        centre_x = floor_point((u0 + u1) / 2, t0)[0]
        su = u0 if centre_x > vp[0] else u1  # the side face that faces the viewer
        c.polygon([p(su, t0, z0), p(su, t1, z0), p(su, t1, z1), p(su, t0, z1)], kind, colour, 0.7)
        c.polygon([p(u0, t0, z1), p(u1, t0, z1), p(u1, t1, z1), p(u0, t1, z1)], kind, colour, 1.15)
        c.polygon([p(u0, t0, z0), p(u1, t0, z0), p(u1, t0, z1), p(u0, t0, z1)], kind, colour)

    kinds = ["bed", "table", "seating", "storage"]
    items = []
    for _ in range(rng.integers(1, 4)):
        kind = str(rng.choice(kinds))
        t0 = rng.uniform(0.05, 0.75)
        items.append((t0, kind))
    for t0, kind in sorted(items, reverse=True):  # far first
        colour = c.colour(kind)
        if kind == "bed":
            u0 = rng.uniform(0.0, 0.5)
            box(u0, u0 + rng.uniform(0.35, 0.5), t0, min(t0 + 0.35, 1.0), 0.22, kind, colour)
        elif kind == "table":
            u0 = rng.uniform(0.1, 0.6)
            u1, t1 = u0 + rng.uniform(0.2, 0.3), min(t0 + 0.2, 1.0)
            for lu, lt in ((u0, t0), (u1 - 0.03, t0), (u0, t1), (u1 - 0.03, t1)):
                box(lu, lu + 0.03, lt, lt + 0.02, 0.3, kind, colour * 0.8)
            box(u0, u1, t0, t1, 0.05, kind, colour, lift=0.3)
        elif kind == "seating":
            u0 = rng.uniform(0.05, 0.75)
            u1, t1 = u0 + rng.uniform(0.12, 0.2), min(t0 + 0.12, 1.0)
            box(u0, u1, t1 - 0.02, t1, 0.55, kind, colour * 0.9)
            box(u0, u1, t0, t1, 0.25, kind, colour)
        else:
            u0 = rng.choice([rng.uniform(0.0, 0.1), rng.uniform(0.7, 0.8)])
            box(u0, u0 + rng.uniform(0.15, 0.2), t0, min(t0 + 0.12, 1.0),
                rng.uniform(0.5, 0.8), kind, colour)

    ids = np.asarray(c.ids, dtype=np.int64)
    # id 0 (a pixel no polygon reached, if rasterisation ever leaves one) counts as wall
    lut_label = np.array([c.label("wall")] + c.labels, dtype=np.uint8)
    lut_colour = np.stack([wall_rgb] + c.colours).astype(np.float32)
    labels = lut_label[ids]
    rgb = lut_colour[ids]

    texture = 1.0 + 0.06 * _smooth_noise(rng, height, width, max(2, min(height, width) // 8))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    light = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.0, 0.3) * h], np.float32)
    dist2 = ((xx - light[0]) ** 2 + (yy - light[1]) ** 2) / (w * w + h * h)
    lighting = rng.uniform(0.8, 1.15) * (0.75 + 0.4 * np.exp(-dist2 / 0.15))
    rgb = rgb * (texture * lighting)[..., None]
    rgb += rng.normal(0.0, 4.0, rgb.shape).astype(np.float32)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return image, labels


def write_dataset(out_dir: str | Path, n: int, size: int | tuple[int, int] = 128,
                  seed: int = 0, classes: str = "indoor") -> list[tuple[Path, Path]]:
    """Write ``n`` rooms as ``images/room_NNNNN.png`` and ``labels/room_NNNNN.png``.

    Room ``i`` uses seed ``(seed, i)``, so datasets with the same seed share a prefix.
    Returns the (image, label) path pairs.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        image, labels = synthetic_room(size, (seed, i), classes)
        name = f"room_{i:05d}.png"
        Image.fromarray(image, "RGB").save(out / "images" / name)
        Image.fromarray(labels, "L").save(out / "labels" / name)
        pairs.append((out / "images" / name, out / "labels" / name))
    log.info("wrote %d synthetic rooms to %s", n, out)
    return pairs
