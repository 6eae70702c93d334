"""Caffe ``DetectionOutput`` rows -> detections in the photo's pixel coordinates.

Caffe's DetectionOutput top is ``[1, 1, rows, 7]``, each row
``[image, label, score, xmin, ymin, xmax, ymax]`` with box corners normalised to the
network input (``0..1``) and **not clipped**: a box may reach outside the image. When no
image of the batch has a detection, Caffe writes one row ``[i, -1, -1, -1, -1, -1, -1]``
per image. The converted Keras model keeps rank-4 tensors NHWC, so the same top arrives as
``[1, rows, 7, 1]``; :func:`rows_from_output` accepts both.

A network input resized from the photo (SSD resizes without keeping the aspect ratio)
covers the whole photo, so normalised coordinates times the photo's width and height are
the photo's pixel coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Detection", "rows_from_output", "detections_from_rows", "label_name"]

ROW = 7  # [image, label, score, xmin, ymin, xmax, ymax]


@dataclass(frozen=True)
class Detection:
    """One detected object.

    ``box`` is ``(xmin, ymin, xmax, ymax)`` in pixels of the photo, clipped to it;
    ``box_normalized`` is the network's row as it came out (unclipped, 0..1 = the image).
    """

    image: int
    label: int
    name: str
    score: float
    box: tuple[float, float, float, float]
    box_normalized: tuple[float, float, float, float]

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def to_json(self, digits: int = 2) -> dict:
        return {"label": self.label, "name": self.name, "score": round(self.score, 6),
                "box": {k: round(v, digits) for k, v in zip(("xmin", "ymin", "xmax", "ymax"), self.box)},
                "box_normalized": dict(zip(("xmin", "ymin", "xmax", "ymax"),
                                           (float(v) for v in self.box_normalized))),
                "image": self.image}


def rows_from_output(output: np.ndarray) -> np.ndarray:
    """``float32 [rows, 7]`` from a DetectionOutput top in Caffe's ``[1, 1, rows, 7]`` or the
    converted model's NHWC ``[1, rows, 7, 1]`` (or already ``[rows, 7]``)."""
    a = np.asarray(output, dtype=np.float32)
    if a.ndim >= 1 and a.shape[-1] == ROW:
        return a.reshape(-1, ROW)
    if a.ndim == 4 and a.shape[2] == ROW and a.shape[3] == 1:
        return a[:, :, :, 0].reshape(-1, ROW)
    raise ValueError(f"a DetectionOutput top has rows of 7 values ([1, 1, rows, 7] or NHWC [1, rows, 7, 1]); "
                     f"received shape {list(a.shape)}")


def label_name(label: int, class_names: Sequence[str] | None) -> str:
    """The class name of a label (``class N`` where no name is known)."""
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return f"class {label}"


def detections_from_rows(rows: np.ndarray, image_size: tuple[int, int], *, threshold: float = 0.0,
                         class_names: Sequence[str] | None = None, image: int | None = 0,
                         keep_outside: bool = False) -> list[Detection]:
    """Rows of one image -> detections, best score first.

    ``image_size`` is the photo's ``(height, width)``. Rows with a negative label (Caffe's
    "nothing found" row) and rows scoring below ``threshold`` are dropped; ``image``
    selects the rows of one batch element (``None``: all). ``class_names[label]`` names a
    label (the list indexed by label, background included). A box lying wholly outside
    the image (SSD priors without ``clip`` can decode to such boxes) has nothing left
    after clipping and is dropped unless ``keep_outside``.
    """
    rows = rows_from_output(rows)
    h, w = image_size
    keep = (rows[:, 1] >= 0) & (rows[:, 2] >= threshold)
    if image is not None:
        keep &= rows[:, 0] == image
    picked = rows[keep]
    order = np.argsort(-picked[:, 2], kind="stable")  # stable: Caffe's order among equal scores
    out = []
    for r in picked[order]:
        raw = tuple(float(v) for v in r[3:7])
        box = (min(max(raw[0] * w, 0.0), float(w)), min(max(raw[1] * h, 0.0), float(h)),
               min(max(raw[2] * w, 0.0), float(w)), min(max(raw[3] * h, 0.0), float(h)))
        if not keep_outside and (box[2] <= box[0] or box[3] <= box[1]):
            continue
        label = int(r[1])
        out.append(Detection(image=int(r[0]), label=label, name=label_name(label, class_names),
                             score=float(r[2]), box=box, box_normalized=raw))  # type: ignore[arg-type]
    return out
