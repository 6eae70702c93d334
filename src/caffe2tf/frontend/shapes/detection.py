"""SSD's detection layers (weiliu89/caffe): PriorBox and DetectionOutput."""
from __future__ import annotations

import math

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.shapes._core import ShapeResult, need, rule
from caffe2tf.errors import ShapeError


def prior_aspect_ratios(p: caffe_pb2.PriorBoxParameter) -> list[float]:
    """1, then each aspect ratio in the order given (one within 1e-6 of an earlier one is
    dropped), each followed by its flip 1/r when ``flip`` (prior_box_layer.cpp)."""
    ratios = [1.0]
    for ar in p.aspect_ratio:
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(ar)
        if p.flip:
            ratios.append(1.0 / ar)
    return ratios


def num_priors(p: caffe_pb2.PriorBoxParameter) -> int:
    """Boxes per cell: every aspect ratio per min_size, plus one per max_size."""
    if not p.min_size:
        raise ShapeError("PriorBox needs min_size")
    if any(m <= 0 for m in p.min_size):
        raise ShapeError(f"PriorBox min_size must be positive, got {list(p.min_size)}")
    if p.max_size:
        if len(p.max_size) != len(p.min_size):
            raise ShapeError(f"PriorBox has {len(p.min_size)} min_size but {len(p.max_size)} max_size")
        if any(mx <= mn for mn, mx in zip(p.min_size, p.max_size)):
            raise ShapeError("PriorBox max_size must be greater than min_size")
    if len(p.variance) not in (0, 1, 4):
        raise ShapeError(f"PriorBox takes 1 or 4 variances, got {len(p.variance)}")
    if (p.HasField("img_h") or p.HasField("img_w")) and p.HasField("img_size"):
        raise ShapeError("PriorBox takes img_size or img_h/img_w, not both")
    if (p.HasField("step_h") or p.HasField("step_w")) and p.HasField("step"):
        raise ShapeError("PriorBox takes step or step_h/step_w, not both")
    return len(prior_aspect_ratios(p)) * len(p.min_size) + len(p.max_size)


@rule("PriorBox")
def _prior_box(param, in_shapes):
    """Bottoms (feature map, image); top (1, 2, H*W*priors*4): boxes, then variances."""
    need(in_shapes, 2, "PriorBox")
    x = in_shapes[0]
    if len(x) != 4 or len(in_shapes[1]) != 4:
        raise ShapeError(f"PriorBox needs 4-D bottoms, got {in_shapes}")
    return ShapeResult([(1, 2, x[2] * x[3] * num_priors(param.prior_box_param) * 4)])


@rule("DetectionOutput")
def _detection_output(param, in_shapes):
    """Bottoms (loc, conf, priors); top (1, 1, rows, 7), rows known only at run time.

    The IR writes the data-dependent dimension as ``None``: (1, 1, None, 7). Caffe's
    checks (detection_output_layer.cpp Reshape): loc has priors*loc_classes*4 and conf
    priors*num_classes values per image, priors = prior.shape[2] / 4.
    """
    need(in_shapes, 3, "DetectionOutput")
    loc, conf, prior = in_shapes
    p = param.detection_output_param
    if not p.HasField("num_classes") or p.num_classes < 1:
        raise ShapeError("DetectionOutput needs num_classes")
    if len(prior) != 3 or prior[1] != 2 or prior[2] % 4:
        raise ShapeError(f"DetectionOutput's third bottom must be PriorBox output (1, 2, 4*priors), got {prior}")
    if len(loc) < 2 or len(conf) < 2 or loc[0] != conf[0]:
        raise ShapeError(f"DetectionOutput's loc {loc} and conf {conf} need the same batch")
    priors = prior[2] // 4
    loc_classes = 1 if p.share_location else p.num_classes
    # Caffe checks channels() (axis 1); the values are read per image, so later axes must be 1
    per_loc = loc[1] if math.prod(loc[2:]) == 1 else None
    per_conf = conf[1] if math.prod(conf[2:]) == 1 else None
    if per_loc != priors * loc_classes * 4:
        raise ShapeError(f"DetectionOutput's loc {loc} must be (N, {priors * loc_classes * 4}) "
                         f"for {priors} priors x {loc_classes} location class(es) x 4")
    if per_conf != priors * p.num_classes:
        raise ShapeError(f"DetectionOutput's conf {conf} must be (N, {priors * p.num_classes}) "
                         f"for {priors} priors x {p.num_classes} classes")
    return ShapeResult([(1, 1, None, 7)])  # type: ignore[list-item]
