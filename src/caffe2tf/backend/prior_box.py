"""SSD's PriorBox, computed at conversion time in Caffe's arithmetic (pure NumPy).

A PriorBox top depends only on shapes and parameters, never on values, so the
converted model holds it as a constant. :func:`prior_boxes` reproduces
``prior_box_layer.cpp`` (weiliu89/caffe, ``ssd`` branch) operation by operation:

* ``min_size`` / ``max_size`` are read into ``int`` (``int min_size_ = min_sizes_[s]``),
  so fractional sizes are truncated;
* the aspect-ratio list starts with 1; each given ratio not already present (|Δ| < 1e-6)
  is appended, followed by ``1 / r`` (computed in double, stored as float) when ``flip``;
* per cell (row-major), per min size: the ``min`` square, the ``sqrt(min * max)`` square
  (integer product, double root, float store) when max sizes are given, then one box per
  ratio != 1 (``min * sqrt(r)`` wide, ``min / sqrt(r)`` high, in float: C++ picks
  ``sqrt(float)``; the double root differs in the last bit on ``priorbox_ssd300``);
* centres ``(w + offset) * step_w`` in float; the step is ``step`` / ``step_h`` /
  ``step_w``, else ``float(image size) / map size``; the image size is ``img_size`` /
  ``img_h`` / ``img_w``, else the data blob's;
* each coordinate ``(centre -/+ size / 2.) / image size`` is evaluated in double (the
  ``2.`` literal promotes) and stored as float; ``clip`` clamps the boxes to [0, 1];
* channel 1 holds the variances: one value everywhere, or the four repeated per box
  (default one variance of 0.1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

f32, f64 = np.float32, np.float64


@dataclass(frozen=True)
class PriorBoxSpec:
    """The parameters of one PriorBox layer as Caffe holds them after ``LayerSetUp``."""

    min_sizes: tuple[float, ...]
    max_sizes: tuple[float, ...] = ()
    aspect_ratios: tuple[float, ...] = ()
    flip: bool = True
    clip: bool = False
    variances: tuple[float, ...] = (0.1,)
    img_h: int = 0
    img_w: int = 0
    step_h: float = 0.0
    step_w: float = 0.0
    offset: float = 0.5

    def __post_init__(self) -> None:
        if not self.min_sizes:
            raise ValueError("PriorBox needs at least one min_size")
        if any(m <= 0 for m in self.min_sizes):
            raise ValueError(f"min_size must be positive, received {self.min_sizes}")
        if self.max_sizes:
            if len(self.max_sizes) != len(self.min_sizes):
                raise ValueError(f"{len(self.max_sizes)} max_size for {len(self.min_sizes)} min_size")
            if any(mx <= mn for mn, mx in zip(self.min_sizes, self.max_sizes)):
                raise ValueError(f"every max_size must exceed its min_size, received {self.max_sizes}")
        if len(self.variances) not in (1, 4):
            raise ValueError(f"PriorBox takes 1 or 4 variances, received {len(self.variances)}")
        if any(v <= 0 for v in self.variances):
            raise ValueError(f"variances must be positive, received {self.variances}")

    @classmethod
    def from_param(cls, p) -> "PriorBoxSpec":
        """From a ``PriorBoxParameter`` (Caffe's ``LayerSetUp`` rules for img/step)."""
        if p.HasField("img_h") or p.HasField("img_w"):
            img_h, img_w = p.img_h, p.img_w
        elif p.HasField("img_size"):
            img_h = img_w = p.img_size
        else:
            img_h = img_w = 0
        if p.HasField("step_h") or p.HasField("step_w"):
            step_h, step_w = p.step_h, p.step_w
        elif p.HasField("step"):
            step_h = step_w = p.step
        else:
            step_h = step_w = 0.0
        return cls(tuple(p.min_size), tuple(p.max_size), tuple(p.aspect_ratio), bool(p.flip), bool(p.clip),
                   tuple(p.variance) or (0.1,), int(img_h), int(img_w), float(step_h), float(step_w),
                   float(p.offset))

    def aspect_ratio_list(self) -> list[np.float32]:
        """Caffe's ``aspect_ratios_``: 1, then each new ratio (and its flip)."""
        ars = [f32(1.0)]
        for r in self.aspect_ratios:
            r = f32(r)
            if any(abs(f64(r) - f64(a)) < 1e-6 for a in ars):
                continue
            ars.append(r)
            if self.flip:
                ars.append(f32(1.0 / f64(r)))
        return ars

    def num_priors(self) -> int:
        return len(self.aspect_ratio_list()) * len(self.min_sizes) + len(self.max_sizes)


def prior_boxes(spec: PriorBoxSpec, layer_hw: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """The PriorBox top ``float32 [1, 2, H * W * num_priors * 4]``.

    ``layer_hw``: the feature map's H, W (bottom 0); ``image_hw``: the data blob's
    H, W (bottom 1), used unless ``img_h``/``img_w`` are set.
    """
    layer_h, layer_w = int(layer_hw[0]), int(layer_hw[1])
    if spec.img_h == 0 or spec.img_w == 0:
        img_h, img_w = int(image_hw[0]), int(image_hw[1])
    else:
        img_h, img_w = spec.img_h, spec.img_w
    if spec.step_h == 0 or spec.step_w == 0:
        step_h, step_w = f32(f32(img_h) / f32(layer_h)), f32(f32(img_w) / f32(layer_w))
    else:
        step_h, step_w = f32(spec.step_h), f32(spec.step_w)
    offset = f32(spec.offset)
    # (width, height) of every prior of one cell, as the float Caffe stores
    sizes: list[tuple[np.float32, np.float32]] = []
    for s, mn in enumerate(spec.min_sizes):
        min_size = int(mn)
        sizes.append((f32(min_size), f32(min_size)))
        if spec.max_sizes:
            side = f32(np.sqrt(f64(min_size * int(spec.max_sizes[s]))))
            sizes.append((side, side))
        for ar in spec.aspect_ratio_list():
            if abs(f64(ar) - 1.0) < 1e-6:
                continue
            root = np.sqrt(f32(ar))  # float overload
            sizes.append((f32(f32(min_size) * root), f32(f32(min_size) / root)))
    bw = np.array([w for w, _ in sizes], f64)
    bh = np.array([h for _, h in sizes], f64)
    cx = (np.arange(layer_w, dtype=f32) + offset).astype(f32) * step_w  # float ops, as Caffe
    cy = (np.arange(layer_h, dtype=f32) + offset).astype(f32) * step_h
    cx = cx.astype(f32).astype(f64)[None, :, None]
    cy = cy.astype(f32).astype(f64)[:, None, None]
    shape = (layer_h, layer_w, len(sizes))
    boxes = np.stack([np.broadcast_to((cx - bw / 2.0) / img_w, shape),
                      np.broadcast_to((cy - bh / 2.0) / img_h, shape),
                      np.broadcast_to((cx + bw / 2.0) / img_w, shape),
                      np.broadcast_to((cy + bh / 2.0) / img_h, shape)], axis=-1).astype(f32).reshape(-1)
    if spec.clip:
        boxes = np.minimum(np.maximum(boxes, f32(0)), f32(1))
    var = np.array(spec.variances, f32)
    variances = np.full(boxes.size, var[0], f32) if var.size == 1 else np.tile(var, boxes.size // 4)
    return np.stack([boxes, variances])[None].astype(f32)
