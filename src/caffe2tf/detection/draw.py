"""Boxes with labels and scores drawn on the photo (Pillow)."""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from caffe2tf.detection.postprocess import Detection

__all__ = ["box_colour", "draw_detections", "png_bytes", "write_png"]

# Bright colours that stand out on photos; label i gets _COLOURS[i % len] (hex for JSON / the page).
_COLOURS = ("#00e676", "#ff1744", "#2979ff", "#ffea00", "#d500f9", "#00e5ff", "#ff9100", "#76ff03",
            "#f50057", "#1de9b6")


def box_colour(label: int) -> str:
    """The colour a label's boxes are drawn in (``#rrggbb``)."""
    return _COLOURS[label % len(_COLOURS)]


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font (needs FreeType)
    except (TypeError, OSError, ImportError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def draw_detections(image_rgb: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of ``uint8 [H, W, 3]`` with each detection's box and ``name score`` label.

    Line width and text size follow the photo's size (about 1/300 and 1/30 of its short
    side), so boxes stay visible on large photos and do not cover small ones. Boxes are
    drawn lowest score first, so the best detection is on top.
    """
    im = Image.fromarray(np.ascontiguousarray(image_rgb, dtype=np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    short = min(im.size)
    width = max(2, round(short / 300))
    font = _font(max(11, round(short / 30)))
    for d in sorted(detections, key=lambda d: d.score):
        colour = box_colour(d.label)
        x0, y0, x1, y1 = (round(v) for v in d.box)  # pixel edges; the box covers [x0, x1) x [y0, y1)
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=width)
        text = f"{d.name} {d.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        pad = max(2, width)
        ty = y0 - th - 2 * pad if y0 - th - 2 * pad >= 0 else y0  # above the box, else inside it
        tx = min(max(x0, 0), max(0, im.size[0] - tw - 2 * pad))
        draw.rectangle([tx, ty, tx + tw + 2 * pad, ty + th + 2 * pad], fill=colour)
        draw.text((tx + pad - left, ty + pad - top), text, fill="#000000", font=font)
    return np.asarray(im)


def png_bytes(image_rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image_rgb, "RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_png(image_rgb: np.ndarray, path: str | Path) -> None:
    Path(path).write_bytes(png_bytes(image_rgb))
