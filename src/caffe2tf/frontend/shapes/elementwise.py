"""Layers whose top has the bottom's shape (activations, normalisations, affine
layers) and their per-channel blobs."""
from __future__ import annotations

from typing import Callable

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.readings import BN_BLOB_COUNTS, UNDECIDED
from caffe2tf.frontend.shapes._core import (Rule, Shape, ShapeResult, canonical_axis, need,
                                             reading_rule, rule)
from caffe2tf.errors import ShapeError

def same_shape(n_blobs: Callable[[caffe_pb2.LayerParameter, Shape], list[Shape]] | None = None) -> Rule:
    def fn(param, in_shapes):
        if not in_shapes:
            raise ShapeError(f"{param.type} needs a bottom")
        x = in_shapes[0]
        if n_blobs and len(x) < 2:
            raise ShapeError(f"{param.type} needs a channel axis, input is {x}")
        return ShapeResult([x] * max(len(param.top), 1), n_blobs(param, x) if n_blobs else [])
    return fn


for _t in ("ReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log",
           "Threshold", "Dropout", "LRN", "MVN", "Softmax", "Clip", "Swish", "ReLU6"):
    rule(_t)(same_shape())
rule("PReLU")(same_shape(lambda p, x: [(1,) if p.prelu_param.channel_shared else (x[1],)]))
rule("BatchNorm")(same_shape(lambda p, x: [(x[1],), (x[1],), (1,)]))
rule("Normalize")(same_shape(lambda p, x: [(1,) if p.norm_param.channel_shared else (x[1],)]))


@reading_rule("BN")
def _bn(param, in_shapes, reading):
    """PSPNet: slope, bias, mean, variance; SegNet/ENet: scale, shift (each (C,))."""
    if reading == UNDECIDED:  # inspect without a caffemodel: the top's shape is the same for both
        return same_shape()(param, in_shapes)
    if reading not in BN_BLOB_COUNTS:
        raise ShapeError(f"BN reading {reading!r} is none of {sorted(BN_BLOB_COUNTS)}")
    return same_shape(lambda p, x: [(x[1],)] * BN_BLOB_COUNTS[reading])(param, in_shapes)


def _axes_slice(x: Shape, axis: int, num_axes: int, what: str) -> tuple[int, int]:
    a = canonical_axis(axis, len(x), f"{what} axis")
    end = len(x) if num_axes == -1 else a + num_axes
    if num_axes < -1 or end > len(x):
        raise ShapeError(f"{what} num_axes {num_axes} does not fit input {x} at axis {axis}")
    return a, end


@rule("Scale")
def _scale(param, in_shapes):
    need(in_shapes, (1, 2), "Scale")
    p = param.scale_param
    x = in_shapes[0]
    if len(in_shapes) == 2:
        s = in_shapes[1]
        a = canonical_axis(p.axis, len(x), "Scale axis") if s else 0
        if tuple(x[a:a + len(s)]) != tuple(s):
            raise ShapeError(f"scale bottom {s} does not match input {x} at axis {p.axis}")
        return ShapeResult([x], [tuple(s)] if p.bias_term else [])
    a, end = _axes_slice(x, p.axis, p.num_axes, "Scale")
    s = tuple(x[a:end])
    return ShapeResult([x], [s] + ([s] if p.bias_term else []))


@rule("Bias")
def _bias(param, in_shapes):
    need(in_shapes, (1, 2), "Bias")
    p = param.bias_param
    x = in_shapes[0]
    if len(in_shapes) == 2:
        b = in_shapes[1]
        a = canonical_axis(p.axis, len(x), "Bias axis") if b else 0
        if tuple(x[a:a + len(b)]) != tuple(b):
            raise ShapeError(f"bias bottom {b} does not match input {x} at axis {p.axis}")
        return ShapeResult([x])
    a, end = _axes_slice(x, p.axis, p.num_axes, "Bias")
    return ShapeResult([x], [tuple(x[a:end])])


@rule("Eltwise")
def _eltwise(param, in_shapes):
    if len(in_shapes) < 2:
        raise ShapeError("Eltwise needs at least two bottoms")
    if any(s != in_shapes[0] for s in in_shapes):
        raise ShapeError(f"Eltwise bottoms differ in shape: {in_shapes}")
    p = param.eltwise_param
    if p.coeff and (len(p.coeff) != len(in_shapes) or p.operation != caffe_pb2.EltwiseParameter.SUM):
        raise ShapeError("Eltwise coeff needs operation SUM and one coefficient per bottom")
    return ShapeResult([in_shapes[0]])


