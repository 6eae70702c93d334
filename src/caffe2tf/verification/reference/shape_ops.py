"""Layers that move, combine or reduce data without weights.

=========  =================================================================
Concat     join bottoms along ``axis`` (legacy ``concat_dim``), default 1
Slice      split along ``axis`` (legacy ``slice_dim``) at ``slice_point``s,
           or into equal parts when none are given
Split      copy the bottom to every top
Eltwise    SUM: sum_i coeff_i * x_i (coeff 1 if none); PROD: prod_i x_i;
           MAX: max_i x_i
Flatten    merge axes ``axis .. end_axis`` into one
Reshape    ``shape`` replaces axes ``axis .. axis+num_axes``; 0 copies the
           bottom's dim, -1 is inferred
Crop       crop bottom 0 to bottom 1's shape from ``axis`` on, at ``offset``
           (one offset for all cropped axes, or one per axis)
ArgMax     top-k indices (or values with ``out_max_val``) along ``axis``, or
           over each flattened sample (N x (1|2) x top_k) without ``axis``;
           ties go to the larger index (std::greater on (value, index))
Reduction  SUM / ASUM / SUMSQ / MEAN over all axes from ``axis``, times coeff
Permute    (SSD) transpose to ``order``; axes it leaves out follow in their
           original order
Tile       repeat the whole block from ``axis`` on ``tiles`` times along
           ``axis`` (channel j of the top is channel j mod C)
=========  =================================================================
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.ir import Node
from caffe2tf.verification.reference._params import (
    canonical_axis, expect_inputs, f32, fail)
from caffe2tf.verification.reference.registry import kernel

_EP = caffe_pb2.EltwiseParameter
_RP = caffe_pb2.ReductionParameter


@kernel("Concat")
def concat(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.concat_param
    expect_inputs(node, inputs, (1, 10_000))
    axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    axis = canonical_axis(node, axis, inputs[0].ndim)
    ref = inputs[0].shape
    for x in inputs[1:]:
        if x.ndim != len(ref) or any(a != b for i, (a, b) in enumerate(zip(x.shape, ref))
                                     if i != axis):
            raise fail(node, f"cannot concatenate {tuple(x.shape)} with {tuple(ref)} "
                             f"along axis {axis}")
    return [f32(np.concatenate([np.asarray(x, np.float32) for x in inputs], axis=axis))]


@kernel("Slice")
def slice_(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.slice_param
    expect_inputs(node, inputs, 1)
    x = inputs[0]
    axis = p.slice_dim if p.HasField("slice_dim") else p.axis
    axis = canonical_axis(node, axis, x.ndim)
    n_top = len(node.outputs)
    dim = x.shape[axis]
    if p.slice_point:
        points = [int(v) for v in p.slice_point]
        if len(points) != n_top - 1 or points != sorted(points) or points[-1] >= dim:
            raise fail(node, f"slice points {points} do not fit {n_top} tops of dim {dim}")
    else:
        if dim % n_top:
            raise fail(node, f"dim {dim} does not split evenly into {n_top} tops")
        points = [dim // n_top * i for i in range(1, n_top)]
    return [f32(part) for part in np.split(x, points, axis=axis)]


@kernel("Split")
def split(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    expect_inputs(node, inputs, 1)
    return [f32(inputs[0]).copy() for _ in node.outputs]


@kernel("Eltwise")
def eltwise(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.eltwise_param
    expect_inputs(node, inputs, (2, 10_000))
    shape = inputs[0].shape
    if any(x.shape != shape for x in inputs):
        raise fail(node, f"bottom shapes differ: {[tuple(x.shape) for x in inputs]}")
    xs = [np.asarray(x, dtype=np.float64) for x in inputs]
    if p.operation == _EP.SUM:
        coeffs = list(p.coeff) or [1.0] * len(xs)
        if len(coeffs) != len(xs):
            raise fail(node, f"{len(coeffs)} coefficients for {len(xs)} bottoms")
        y = sum(float(c) * x for c, x in zip(coeffs, xs))
    elif p.operation == _EP.PROD:
        if p.coeff:
            raise fail(node, "coefficients are only allowed with SUM")
        y = xs[0]
        for x in xs[1:]:
            y = y * x
    elif p.operation == _EP.MAX:
        y = xs[0]
        for x in xs[1:]:
            y = np.maximum(y, x)
    else:
        raise fail(node, f"unknown eltwise operation {p.operation}")
    return [f32(y)]


@kernel("Flatten")
def flatten(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.flatten_param
    expect_inputs(node, inputs, 1)
    x = inputs[0]
    start = canonical_axis(node, p.axis, x.ndim)
    end = canonical_axis(node, p.end_axis, x.ndim)
    if end < start:
        raise fail(node, f"end_axis {p.end_axis} before axis {p.axis}")
    shape = x.shape[:start] + (int(np.prod(x.shape[start:end + 1], dtype=np.int64)),) \
        + x.shape[end + 1:]
    return [f32(x.reshape(shape))]


def reshape_shape(node: Node, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Caffe ``ReshapeLayer::Reshape`` output shape."""
    p = node.param.reshape_param
    dims = [int(d) for d in p.shape.dim]
    nd = len(in_shape)
    axis = p.axis + nd + 1 if p.axis < 0 else p.axis
    if not 0 <= axis <= nd:
        raise fail(node, f"axis {p.axis} out of range for {nd} axes")
    end = nd if p.num_axes == -1 else axis + p.num_axes
    if p.num_axes < -1 or end > nd:
        raise fail(node, f"num_axes {p.num_axes} out of range")
    if dims.count(-1) > 1:
        raise fail(node, "at most one -1 in reshape_param.shape")
    new = []
    for i, d in enumerate(dims):
        if d == 0:
            if axis + i >= nd:
                raise fail(node, f"dim {i} is 0 but the bottom has no axis {axis + i}")
            new.append(in_shape[axis + i])
        else:
            new.append(d)
    out = list(in_shape[:axis]) + new + list(in_shape[end:])
    total = int(np.prod(in_shape, dtype=np.int64))
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if known == 0 or total % known:
            raise fail(node, f"cannot infer -1 reshaping {in_shape} to {out}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != total:
        raise fail(node, f"cannot reshape {in_shape} to {tuple(out)}")
    return tuple(out)


@kernel("Reshape")
def reshape(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    expect_inputs(node, inputs, 1)
    x = inputs[0]
    return [f32(x.reshape(reshape_shape(node, tuple(x.shape))))]


@kernel("Crop")
def crop(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.crop_param
    expect_inputs(node, inputs, 2)
    x, ref = inputs
    axis = canonical_axis(node, p.axis, x.ndim)
    n_crop = x.ndim - axis
    offsets = [int(o) for o in p.offset]
    if len(offsets) == 0:
        offsets = [0] * n_crop
    elif len(offsets) == 1:
        offsets = offsets * n_crop
    elif len(offsets) != n_crop:
        raise fail(node, f"{len(offsets)} offsets for {n_crop} cropped axes")
    index: list[slice] = [slice(None)] * axis
    for i, off in enumerate(offsets):
        a = axis + i
        size = ref.shape[a]
        if off + size > x.shape[a]:
            raise fail(node, f"crop of {size} at offset {off} exceeds dim {x.shape[a]} "
                             f"of axis {a}")
        index.append(slice(off, off + size))
    return [f32(x[tuple(index)])]


def _topk_desc(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k along the last axis, ties broken towards the larger index."""
    rev = values[..., ::-1]
    order = np.argsort(-rev, axis=-1, kind="stable")[..., :k]
    idx = values.shape[-1] - 1 - order
    return idx, np.take_along_axis(values, idx, axis=-1)


@kernel("ArgMax")
def argmax(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.argmax_param
    expect_inputs(node, inputs, 1)
    x = np.asarray(inputs[0], dtype=np.float32)
    k = int(p.top_k)
    if p.HasField("axis"):
        axis = canonical_axis(node, p.axis, x.ndim)
        if not 1 <= k <= x.shape[axis]:
            raise fail(node, f"top_k {k} out of range for dim {x.shape[axis]}")
        moved = np.moveaxis(x, axis, -1)
        idx, val = _topk_desc(moved, k)
        out = val if p.out_max_val else idx.astype(np.float32)
        return [f32(np.moveaxis(out, -1, axis))]
    flat = x.reshape(x.shape[0], -1)
    if not 1 <= k <= flat.shape[1]:
        raise fail(node, f"top_k {k} out of range for {flat.shape[1]} values per sample")
    idx, val = _topk_desc(flat, k)
    parts = [idx.astype(np.float32)] + ([val] if p.out_max_val else [])
    out = np.stack(parts, axis=1)  # (N, 1|2, k)
    if x.ndim > 3:
        out = out.reshape(out.shape + (1,) * (x.ndim - 3))
    return [f32(out)]


@kernel("Reduction")
def reduction(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.reduction_param
    expect_inputs(node, inputs, 1)
    x = np.asarray(inputs[0], dtype=np.float64)
    axis = canonical_axis(node, p.axis, x.ndim)
    flat = x.reshape(x.shape[:axis] + (-1,))
    op = p.operation
    if op == _RP.SUM:
        y = flat.sum(axis=-1)
    elif op == _RP.ASUM:
        y = np.abs(flat).sum(axis=-1)
    elif op == _RP.SUMSQ:
        y = (flat * flat).sum(axis=-1)
    elif op == _RP.MEAN:
        y = flat.mean(axis=-1)
    else:
        raise fail(node, f"unknown reduction operation {op}")
    return [f32(np.asarray(y * float(p.coeff)).reshape(x.shape[:axis]))]


@kernel("Permute")
def permute(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    expect_inputs(node, inputs, 1)
    x = inputs[0]
    order: list[int] = []
    for o in node.param.permute_param.order:
        if o >= x.ndim:
            raise fail(node, f"order {o} out of range for a {x.ndim}-D bottom")
        if o in order:
            raise fail(node, f"order repeats axis {o}")
        order.append(int(o))
    order += [a for a in range(x.ndim) if a not in order]
    return [f32(np.transpose(x, order))]


@kernel("Tile")
def tile(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    expect_inputs(node, inputs, 1)
    p = node.param.tile_param
    x = inputs[0]
    axis = canonical_axis(node, p.axis, x.ndim)
    if not p.HasField("tiles") or p.tiles < 1:
        raise fail(node, "tile_param.tiles must be given and positive")
    reps = [1] * x.ndim
    reps[axis] = int(p.tiles)
    return [f32(np.tile(x, reps))]
