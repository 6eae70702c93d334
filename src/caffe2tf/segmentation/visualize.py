"""Label PNGs, colour overlays and legends (Pillow only).

- :func:`write_label_png`: one class index per pixel, 8-bit greyscale when every
  value fits (< 256 classes), 16-bit otherwise.
- :func:`colorize` / :func:`overlay`: palette colours, alpha-blended over the photo.
- :func:`legend`: ``(class, name, colour, share)`` entries sorted by area share;
  :func:`legend_image` draws them with Pillow's default font.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from caffe2tf.segmentation.classes import IGNORE_INDEX, make_palette
from caffe2tf.segmentation.errors import SegmentationInputError

__all__ = ["LegendEntry", "write_label_png", "read_label_png", "colorize", "overlay",
           "write_overlay_png", "legend", "legend_image", "write_legend_png"]

IGNORE_COLOUR = (0, 0, 0)


@dataclass(frozen=True)
class LegendEntry:
    """One class in a legend: index, name, RGB colour, fraction of labelled pixels."""

    index: int
    name: str
    colour: tuple[int, int, int]
    share: float


def _as_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected a label map [H, W], received shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"negative label {int(labels.min())} in label map")
    return labels


def write_label_png(labels: np.ndarray, path: str | Path) -> Path:
    """Write class indices as a greyscale PNG (8-bit if max < 256, else 16-bit)."""
    labels = _as_labels(labels)
    top = int(labels.max()) if labels.size else 0
    if top > 65535:
        raise ValueError(f"label {top} does not fit a 16-bit PNG")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if top <= 255:
        Image.fromarray(labels.astype(np.uint8), "L").save(path)
    else:
        Image.fromarray(labels.astype(np.uint16)).save(path)  # mode "I;16"
    return path


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a label PNG written by :func:`write_label_png` (or any 8/16-bit greyscale)."""
    with Image.open(path) as im:
        if im.mode == "P":
            return np.asarray(im).astype(np.int32)  # palette indices are the labels
        if im.mode not in ("L", "I;16", "I", "I;16B"):
            raise SegmentationInputError(
                f"label PNG must be greyscale or palette, found mode {im.mode}", file=str(path))
        return np.asarray(im).astype(np.int32)


def colorize(labels: np.ndarray, palette: np.ndarray | None = None,
             ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """``uint8 [H, W, 3]`` colour image; ``ignore_index`` pixels are black."""
    labels = _as_labels(labels)
    top = int(labels.max()) if labels.size else 0
    if palette is None:
        palette = make_palette(max(top + 1, 1))
    palette = np.asarray(palette, dtype=np.uint8)
    lut = np.zeros((max(top + 1, len(palette)), 3), dtype=np.uint8)
    lut[:len(palette)] = palette
    valid = labels < len(palette)
    if ignore_index is not None:
        valid |= labels == ignore_index
        if ignore_index < len(lut):
            lut[ignore_index] = IGNORE_COLOUR
    if not valid.all():
        raise ValueError(f"label {int(labels[~valid].max())} has no palette colour "
                         f"({len(palette)} colours)")
    return lut[labels]


def overlay(image_rgb: np.ndarray, labels: np.ndarray, palette: np.ndarray | None = None,
            alpha: float = 0.5, ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """Blend the label colours over the photo: ``(1 - alpha) * photo + alpha * colour``.

    Ignored pixels keep the photo unchanged.
    """
    image = np.asarray(image_rgb)
    labels = _as_labels(labels)
    if image.shape[:2] != labels.shape or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image {image.shape} and labels {labels.shape} do not match")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], received {alpha}")
    colours = colorize(labels, palette, ignore_index).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    if ignore_index is not None:
        blended[labels == ignore_index] = image[labels == ignore_index]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def write_overlay_png(image_rgb: np.ndarray, labels: np.ndarray, path: str | Path,
                      palette: np.ndarray | None = None, alpha: float = 0.5,
                      ignore_index: int | None = IGNORE_INDEX) -> Path:
    """:func:`overlay` written as an RGB PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay(image_rgb, labels, palette, alpha, ignore_index), "RGB").save(path)
    return path


def legend(labels: np.ndarray, class_names: list[str], palette: np.ndarray | None = None,
           ignore_index: int | None = IGNORE_INDEX, min_share: float = 0.0) -> list[LegendEntry]:
    """Classes present in ``labels``, largest area first (ties by index).

    ``share`` is the fraction of non-ignored pixels; entries below ``min_share`` are
    dropped.
    """
    labels = _as_labels(labels)
    if palette is None:
        palette = make_palette(len(class_names))
    flat = labels.ravel()
    if ignore_index is not None:
        flat = flat[flat != ignore_index]
    if flat.size == 0:
        return []
    if int(flat.max()) >= len(class_names):
        raise ValueError(f"label {int(flat.max())} has no name ({len(class_names)} names)")
    counts = np.bincount(flat, minlength=len(class_names))
    total = counts.sum()
    order = sorted(np.flatnonzero(counts), key=lambda c: (-counts[c], c))
    return [LegendEntry(int(c), class_names[c], tuple(int(v) for v in palette[c]),
                        float(counts[c] / total))
            for c in order if counts[c] / total >= min_share]


def legend_image(entries: list[LegendEntry], swatch: int = 14, padding: int = 6,
                 width: int = 260) -> Image.Image:
    """An RGB legend: one row per entry with a colour swatch, name and percentage."""
    font = ImageFont.load_default()
    row = swatch + padding
    height = padding + row * max(len(entries), 1)
    im = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    if not entries:
        draw.text((padding, padding), "(no labelled pixels)", fill=(0, 0, 0), font=font)
    for i, entry in enumerate(entries):
        top = padding + i * row
        draw.rectangle([padding, top, padding + swatch - 1, top + swatch - 1],
                       fill=entry.colour, outline=(0, 0, 0))
        text = f"{entry.name}  {100 * entry.share:.1f}%"
        draw.text((2 * padding + swatch, top + 1), text, fill=(0, 0, 0), font=font)
    return im


def write_legend_png(entries: list[LegendEntry], path: str | Path) -> Path:
    """:func:`legend_image` written as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    legend_image(entries).save(path)
    return path
