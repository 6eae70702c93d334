"""SSD's detection layers (weiliu89/caffe), in Caffe's float32 arithmetic.

``PriorBox`` (bottoms: feature map ``(N, C, H, W)``, image ``(N, C, IH, IW)``)
gives ``(1, 2, H * W * P * 4)``: channel 0 the boxes ``(xmin, ymin, xmax, ymax)``
divided by the image size, channel 1 the variances. Per cell ``(h, w)``
(row-major) the centre is ``((w + offset) * step_w, (h + offset) * step_h)``
in float32, and per ``min_size`` (truncated to an int, as Caffe's
``int min_size_ = min_sizes_[s]``) the boxes are::

    min x min                                  (aspect ratio 1)
    sqrt(min * max) x sqrt(min * max)          (if max_size; max truncated too)
    min*sqrt(r) x min/sqrt(r)                  for each r != 1 in the ratio list

The ratio list is ``[1]`` then each ``aspect_ratio`` not already present
(``|r - r'| < 1e-6``), each followed by ``1/r`` when ``flip``. A coordinate
is ``float((centre -/+ size / 2.) / image_size)`` computed in double, like
the C++ (``2.`` is a double literal). ``clip`` clamps the boxes to [0, 1];
variances are one value everywhere, or the four given, repeated per prior
(0.1 when none is given). The image size is ``img_h/img_w`` (or
``img_size``) if given, else the image bottom's; the step is
``step_h/step_w`` (or ``step``) if given, else ``float(image) / map``.

``DetectionOutput`` (bottoms: loc ``(N, P*L*4)``, conf ``(N, P*K)``, priors
``(1, 2, P*4)``; ``L`` = 1 with ``share_location`` else ``K``) decodes every
prediction against its prior (``code_type`` CORNER / CENTER_SIZE /
CORNER_SIZE, variances applied unless ``variance_encoded_in_target``), then per
image and per class except ``background_label_id``:

1. candidates: scores ``> confidence_threshold`` (strict; every score when the
   threshold is unset), sorted by score (stable, descending), the first
   ``top_k`` kept (``nms_param.top_k``, all when unset);
2. greedy NMS: a candidate is kept if its Jaccard overlap with every kept box
   is ``<= t``; ``t`` starts at ``nms_threshold`` and after each kept box
   becomes ``t * eta`` while ``eta < 1`` and ``t > 0.5``;
3. if more than ``keep_top_k`` (>= 0) boxes survive over all classes, the best
   ``keep_top_k`` scores are kept.

The top is ``(1, 1, rows, 7)``, rows ``[image, label, score, xmin, ymin, xmax,
ymax]`` grouped by image, then label ascending, then score descending; boxes
are not clipped. When no image has a detection it is ``(1, 1, N, 7)`` with
rows ``[i, -1, -1, -1, -1, -1, -1]``; otherwise images without detections get
no row. The keep_top_k sort is stable here; Caffe's ``std::sort`` may order
exactly tied scores of different boxes differently.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.ir import Node
from caffe2tf.verification.reference._params import expect_inputs, f32, fail
from caffe2tf.verification.reference.registry import kernel

_CODE = caffe_pb2.PriorBoxParameter
_F = np.float32


# ------------------------------------------------------------------ PriorBox --


def aspect_ratios(node: Node) -> list[np.float32]:
    """Caffe's ratio list: 1, then each new ratio and (with ``flip``) its inverse."""
    p = node.param.prior_box_param
    ratios = [_F(1.0)]
    for r in p.aspect_ratio:
        r = _F(r)
        if any(abs(r - q) < 1e-6 for q in ratios):
            continue
        if r <= 0:
            raise fail(node, f"aspect_ratio must be positive, got {float(r)}")
        ratios.append(r)
        if p.flip:
            ratios.append(_F(1.0 / float(r)))  # 1./ar in double, stored as float
    return ratios


def _image_and_step(node: Node, fh: int, fw: int,
                    image_shape: tuple[int, ...] | None) -> tuple[int, int, _F, _F]:
    p = node.param.prior_box_param
    if p.HasField("img_h") or p.HasField("img_w"):
        if p.HasField("img_size"):
            raise fail(node, "give img_size or img_h/img_w, not both")
        img_h, img_w = int(p.img_h), int(p.img_w)
        if img_h <= 0 or img_w <= 0:
            raise fail(node, "img_h and img_w must both be given and positive")
    elif p.HasField("img_size"):
        img_h = img_w = int(p.img_size)
        if img_h <= 0:
            raise fail(node, "img_size must be positive")
    else:
        if image_shape is None or len(image_shape) < 4:
            raise fail(node, "needs the image as its second bottom (or img_size/img_h/img_w)")
        img_h, img_w = int(image_shape[2]), int(image_shape[3])
    if p.HasField("step_h") or p.HasField("step_w"):
        if p.HasField("step"):
            raise fail(node, "give step or step_h/step_w, not both")
        step_h, step_w = _F(p.step_h), _F(p.step_w)
        if step_h <= 0 or step_w <= 0:
            raise fail(node, "step_h and step_w must both be given and positive")
    elif p.HasField("step"):
        step_h = step_w = _F(p.step)
        if step_h <= 0:
            raise fail(node, "step must be positive")
    else:
        step_h, step_w = _F(_F(img_h) / _F(fh)), _F(_F(img_w) / _F(fw))
    return img_h, img_w, step_h, step_w


def _box_sizes(node: Node) -> list[tuple[float, float]]:
    """(width, height) of every prior of one cell, as the float32 values Caffe holds."""
    p = node.param.prior_box_param
    if not p.min_size:
        raise fail(node, "needs at least one min_size")
    mins = [_F(m) for m in p.min_size]
    maxs = [_F(m) for m in p.max_size]
    if maxs and len(maxs) != len(mins):
        raise fail(node, f"{len(maxs)} max_size for {len(mins)} min_size")
    for i, m in enumerate(mins):
        if m <= 0:
            raise fail(node, f"min_size must be positive, got {float(m)}")
        if maxs and not maxs[i] > m:
            raise fail(node, f"max_size {float(maxs[i])} must exceed min_size {float(m)}")
    ratios = aspect_ratios(node)
    sizes: list[tuple[float, float]] = []
    for s, m in enumerate(mins):
        mn = int(m)  # int min_size_ = min_sizes_[s]
        sizes.append((float(_F(mn)), float(_F(mn))))
        if maxs:
            mx = int(maxs[s])
            side = float(_F(math.sqrt(mn * mx)))  # sqrt of an int product, in double
            sizes.append((side, side))
        for r in ratios:
            if abs(float(r) - 1.0) < 1e-6:
                continue
            root = np.sqrt(r)  # sqrt(float) -> float
            sizes.append((float(_F(_F(mn) * root)), float(_F(_F(mn) / root))))
    return sizes


def prior_boxes(node: Node, feature_shape: tuple[int, ...],
                image_shape: tuple[int, ...] | None) -> np.ndarray:
    """The ``(1, 2, H*W*P*4)`` PriorBox output for these bottom shapes."""
    p = node.param.prior_box_param
    if len(feature_shape) < 4:
        raise fail(node, f"expects a 4-D feature map, got shape {feature_shape}")
    fh, fw = int(feature_shape[2]), int(feature_shape[3])
    img_h, img_w, step_h, step_w = _image_and_step(node, fh, fw, image_shape)
    offset = _F(p.offset)
    cx = ((np.arange(fw, dtype=_F) + offset) * step_w).astype(np.float64)
    cy = ((np.arange(fh, dtype=_F) + offset) * step_h).astype(np.float64)
    cx, cy = np.meshgrid(cx, cy)  # (H, W) each
    boxes = []
    for bw, bh in _box_sizes(node):
        boxes.append(np.stack([(cx - bw / 2.0) / img_w, (cy - bh / 2.0) / img_h,
                               (cx + bw / 2.0) / img_w, (cy + bh / 2.0) / img_h], axis=-1))
    coords = np.stack(boxes, axis=2).astype(_F).reshape(-1)  # (H, W, P, 4) row-major
    if p.clip:
        coords = np.minimum(np.maximum(coords, _F(0)), _F(1))
    variances = [_F(v) for v in p.variance]
    if len(variances) > 1 and len(variances) != 4:
        raise fail(node, f"give 1 or 4 variances, got {len(variances)}")
    if any(v <= 0 for v in variances):
        raise fail(node, "variances must be positive")
    if not variances:
        variances = [_F(0.1)]
    if len(variances) == 1:
        var = np.full(coords.shape, variances[0], dtype=_F)
    else:
        var = np.tile(np.array(variances, dtype=_F), coords.size // 4)
    return np.stack([coords, var])[None]


@kernel("PriorBox")
def prior_box(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    expect_inputs(node, inputs, (1, 2))
    image = tuple(inputs[1].shape) if len(inputs) > 1 else None
    return [f32(prior_boxes(node, tuple(inputs[0].shape), image))]


# ----------------------------------------------------------- DetectionOutput --


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances: np.ndarray,
                 code_type: int, variance_in_target: bool) -> np.ndarray:
    """Decode ``(P, 4)`` predictions against ``(P, 4)`` priors, float32 like Caffe."""
    loc = loc.astype(_F)
    pr = priors.astype(_F)
    v = variances.astype(_F)
    px0, py0, px1, py1 = pr.T
    lx0, ly0, lx1, ly1 = loc.T
    if code_type == _CODE.CORNER:
        if variance_in_target:
            out = [px0 + lx0, py0 + ly0, px1 + lx1, py1 + ly1]
        else:
            out = [px0 + v[:, 0] * lx0, py0 + v[:, 1] * ly0,
                   px1 + v[:, 2] * lx1, py1 + v[:, 3] * ly1]
        return np.stack(out, axis=1)
    pw, ph = px1 - px0, py1 - py0
    if np.any(pw <= 0) or np.any(ph <= 0):
        raise ValueError("a prior box has no positive width or height")
    if code_type == _CODE.CENTER_SIZE:
        pcx, pcy = (px0 + px1) / _F(2), (py0 + py1) / _F(2)
        if variance_in_target:
            cx, cy = lx0 * pw + pcx, ly0 * ph + pcy
            ew, eh = lx1, ly1
        else:
            cx, cy = v[:, 0] * lx0 * pw + pcx, v[:, 1] * ly0 * ph + pcy
            ew, eh = v[:, 2] * lx1, v[:, 3] * ly1
        # exp in double, times the float prior size, stored as float (this order
        # matches the recorded rows to the bit more often than expf does)
        w = (np.exp(ew.astype(np.float64)) * pw).astype(_F)
        h = (np.exp(eh.astype(np.float64)) * ph).astype(_F)
        return np.stack([cx - w / _F(2), cy - h / _F(2), cx + w / _F(2), cy + h / _F(2)],
                        axis=1)
    if code_type == _CODE.CORNER_SIZE:
        if variance_in_target:
            out = [px0 + lx0 * pw, py0 + ly0 * ph, px1 + lx1 * pw, py1 + ly1 * ph]
        else:
            out = [px0 + v[:, 0] * lx0 * pw, py0 + v[:, 1] * ly0 * ph,
                   px1 + v[:, 2] * lx1 * pw, py1 + v[:, 3] * ly1 * ph]
        return np.stack(out, axis=1)
    raise ValueError(f"unknown code_type {code_type}")


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Caffe's ``BBoxSize`` (normalised): 0 for an inverted box, else w*h in float32."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    return np.where(bad, _F(0), w * h).astype(_F)


def jaccard(box: np.ndarray, area: _F, others: np.ndarray, other_areas: np.ndarray) -> np.ndarray:
    """Caffe's ``JaccardOverlap`` of one box with each of ``others`` (float32)."""
    apart = ((others[:, 0] > box[2]) | (others[:, 2] < box[0])
             | (others[:, 1] > box[3]) | (others[:, 3] < box[1]))
    iw = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    ih = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    inter = (iw * ih).astype(_F)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / ((area + other_areas) - inter)
    return np.where(apart | ~((iw > 0) & (ih > 0)), _F(0), iou).astype(_F)


def nms(boxes: np.ndarray, areas: np.ndarray, scores: np.ndarray, threshold: _F,
        nms_threshold: _F, eta: _F, top_k: int) -> list[int]:
    """Caffe's ``ApplyNMSFast``: indices kept, in the order they were kept."""
    cand = np.flatnonzero(scores > threshold)
    cand = cand[np.argsort(-scores[cand], kind="stable")]
    if top_k > -1:
        cand = cand[:top_k]
    kept: list[int] = []
    t = _F(nms_threshold)
    for idx in cand:
        if kept:
            ov = jaccard(boxes[idx], areas[idx], boxes[kept], areas[kept])
            keep = bool(np.all(ov <= t))
        else:
            keep = True
        if keep:
            kept.append(int(idx))
            if eta < 1 and t > 0.5:
                t = _F(t * eta)
    return kept


@kernel("DetectionOutput")
def detection_output(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    expect_inputs(node, inputs, 3)
    p = node.param.detection_output_param
    if not p.HasField("num_classes"):
        raise fail(node, "detection_output_param.num_classes is required")
    classes = int(p.num_classes)
    share = bool(p.share_location)
    loc_classes = 1 if share else classes
    background = int(p.background_label_id)
    threshold = _F(p.confidence_threshold) if p.HasField("confidence_threshold") \
        else _F(-np.finfo(np.float32).max)
    nms_p = p.nms_param
    nms_threshold, eta = _F(nms_p.nms_threshold), _F(nms_p.eta)
    if nms_threshold < 0 or not 0 < eta <= 1:
        raise fail(node, "needs nms_threshold >= 0 and 0 < eta <= 1")
    top_k = int(nms_p.top_k) if nms_p.HasField("top_k") else -1
    keep_top_k = int(p.keep_top_k)
    if share and background == -1:
        raise fail(node, "share_location with background_label_id -1 has no location "
                         "predictions in Caffe")

    loc, conf, prior = (np.asarray(a, dtype=_F) for a in inputs)
    num = loc.shape[0]
    if prior.ndim < 3 or prior.shape[-1] % 4:
        raise fail(node, f"prior bottom must be (1, 2, P*4), got {tuple(prior.shape)}")
    n_priors = prior.shape[2] // 4
    if loc[0].size != n_priors * loc_classes * 4 or conf.shape[0] != num \
            or conf[0].size != n_priors * classes:
        raise fail(node, f"{n_priors} priors do not fit loc {tuple(loc.shape)} and conf "
                         f"{tuple(conf.shape)} with {classes} classes")
    flat_prior = prior.reshape(-1)
    prior_xy = flat_prior[:n_priors * 4].reshape(n_priors, 4)
    prior_var = flat_prior[n_priors * 4:n_priors * 8].reshape(n_priors, 4)
    code = int(p.code_type)
    in_target = bool(p.variance_encoded_in_target)

    per_image: list[list[tuple[int, float, np.ndarray]]] = []
    for i in range(num):
        locs = loc[i].reshape(n_priors, loc_classes, 4)
        scores = conf[i].reshape(n_priors, classes)
        decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c in range(loc_classes):
            label = -1 if share else c
            if label == background:
                continue
            b = decode_boxes(locs[:, c], prior_xy, prior_var, code, in_target)
            decoded[label] = (b, box_areas(b))
        kept: dict[int, list[int]] = {}
        for c in range(classes):
            if c == background:
                continue
            boxes, areas = decoded[-1 if share else c]
            kept[c] = nms(boxes, areas, scores[:, c], threshold, nms_threshold, eta, top_k)
        total = sum(len(v) for v in kept.values())
        if keep_top_k > -1 and total > keep_top_k:
            pairs = [(float(scores[idx, c]), c, idx) for c in sorted(kept) for idx in kept[c]]
            order = sorted(range(len(pairs)), key=lambda j: -pairs[j][0])[:keep_top_k]
            kept = {}
            for j in order:
                _, c, idx = pairs[j]
                kept.setdefault(c, []).append(idx)
        rows = []
        for c in sorted(kept):
            boxes, _ = decoded[-1 if share else c]
            rows.extend((c, scores[idx, c], boxes[idx]) for idx in kept[c])
        per_image.append(rows)

    if not any(per_image):
        out = np.full((num, 7), -1.0, dtype=_F)
        out[:, 0] = np.arange(num)
        return [out.reshape(1, 1, num, 7)]
    rows_out = [np.concatenate([[_F(i), _F(c), _F(s)], box]).astype(_F)
                for i, rows in enumerate(per_image) for c, s, box in rows]
    return [np.stack(rows_out).reshape(1, 1, len(rows_out), 7)]
