"""Layers that move, split, join or reduce tensors (no blobs)."""
from __future__ import annotations

import math

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.shapes._core import ShapeResult, canonical_axis, need, rule
from caffe2tf.errors import ShapeError


@rule("Split")
def _split(param, in_shapes):
    need(in_shapes, 1, "Split")
    return ShapeResult([in_shapes[0]] * len(param.top))


@rule("Concat")
def _concat(param, in_shapes):
    if not in_shapes:
        raise ShapeError("Concat needs bottoms")
    p = param.concat_param
    x = in_shapes[0]
    axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    a = canonical_axis(axis, len(x), "Concat axis")
    for s in in_shapes[1:]:
        if len(s) != len(x) or any(s[i] != x[i] for i in range(len(x)) if i != a):
            raise ShapeError(f"Concat bottoms {in_shapes} differ outside axis {a}")
    out = list(x)
    out[a] = sum(s[a] for s in in_shapes)
    return ShapeResult([tuple(out)])


@rule("Slice")
def _slice(param, in_shapes):
    need(in_shapes, 1, "Slice")
    p = param.slice_param
    x = in_shapes[0]
    a = canonical_axis(p.slice_dim if p.HasField("slice_dim") else p.axis, len(x), "Slice axis")
    n_top = len(param.top)
    if n_top < 1:
        raise ShapeError("Slice needs at least one top")
    points = list(p.slice_point)
    if points:
        if len(points) != n_top - 1 or points != sorted(points) or points[0] <= 0 or points[-1] >= x[a]:
            raise ShapeError(f"slice_point {points} does not split axis {a} of size {x[a]} into {n_top} parts")
        bounds = [0] + points + [x[a]]
    else:
        if x[a] % n_top:
            raise ShapeError(f"axis {a} of size {x[a]} does not split evenly into {n_top} tops")
        bounds = [i * x[a] // n_top for i in range(n_top + 1)]
    outs = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        s = list(x)
        s[a] = hi - lo
        outs.append(tuple(s))
    return ShapeResult(outs)


@rule("Flatten")
def _flatten(param, in_shapes):
    need(in_shapes, 1, "Flatten")
    x = in_shapes[0]
    a = canonical_axis(param.flatten_param.axis, len(x), "Flatten axis")
    e = canonical_axis(param.flatten_param.end_axis, len(x), "Flatten end_axis")
    return ShapeResult([tuple(x[:a]) + (math.prod(x[a:e + 1]),) + tuple(x[e + 1:])])


@rule("Reshape")
def _reshape(param, in_shapes):
    need(in_shapes, 1, "Reshape")
    p = param.reshape_param
    x = in_shapes[0]
    start = canonical_axis(p.axis, len(x) + 1, "Reshape axis") if p.axis >= 0 else len(x) + 1 + p.axis
    end = len(x) if p.num_axes == -1 else start + p.num_axes
    if not 0 <= start <= end <= len(x):
        raise ShapeError(f"Reshape axis {p.axis}/num_axes {p.num_axes} do not fit input {x}")
    dims = list(p.shape.dim)
    new: list[int] = []
    infer_at = None
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= len(x):
                raise ShapeError(f"Reshape dim 0 at position {i} copies a non-existent axis of {x}")
            new.append(x[start + i])
        elif d == -1:
            if infer_at is not None:
                raise ShapeError("Reshape has more than one -1")
            infer_at = len(new)
            new.append(1)
        elif d < -1:
            raise ShapeError(f"Reshape dim {d} is invalid")
        else:
            new.append(d)
    out = list(x[:start]) + new + list(x[end:])
    total, known = math.prod(x), math.prod(out)
    if infer_at is not None:
        if known == 0 or total % known:
            raise ShapeError(f"Reshape cannot infer -1: {x} into {out}")
        out[start + infer_at] = total // known
    if math.prod(out) != total:
        raise ShapeError(f"Reshape {x} ({total} elements) into {tuple(out)} changes the element count")
    return ShapeResult([tuple(out)])


@rule("Crop")
def _crop(param, in_shapes):
    need(in_shapes, 2, "Crop")
    x, ref = in_shapes
    if len(ref) != len(x):
        raise ShapeError(f"Crop input {x} and reference {ref} differ in rank")
    p = param.crop_param
    a = canonical_axis(p.axis, len(x), "Crop axis")
    n = len(x) - a
    offs = list(p.offset)
    if len(offs) not in (0, 1, n):
        raise ShapeError(f"Crop has {len(offs)} offsets for {n} cropped axes")
    offs = offs * n if len(offs) == 1 else (offs or [0] * n)
    out = list(x)
    for i in range(n):
        if ref[a + i] + offs[i] > x[a + i]:
            raise ShapeError(f"Crop of axis {a + i}: offset {offs[i]} + size {ref[a + i]} exceeds {x[a + i]}")
        out[a + i] = ref[a + i]
    return ShapeResult([tuple(out)])


@rule("ArgMax")
def _argmax(param, in_shapes):
    need(in_shapes, 1, "ArgMax")
    p = param.argmax_param
    x = in_shapes[0]
    if p.HasField("axis"):
        a = canonical_axis(p.axis, len(x), "ArgMax axis")
        if p.top_k > x[a]:
            raise ShapeError(f"ArgMax top_k {p.top_k} exceeds axis size {x[a]}")
        out = list(x)
        out[a] = p.top_k
        return ShapeResult([tuple(out)])
    out = [1] * max(len(x), 3)
    out[0] = x[0]
    out[2] = p.top_k
    if p.out_max_val:
        out[1] = 2
    return ShapeResult([tuple(out)])


@rule("Reduction")
def _reduction(param, in_shapes):
    need(in_shapes, 1, "Reduction")
    x = in_shapes[0]
    a = canonical_axis(param.reduction_param.axis, len(x), "Reduction axis")
    return ShapeResult([tuple(x[:a])])


@rule("Tile")
def _tile(param, in_shapes):
    need(in_shapes, 1, "Tile")
    x = list(in_shapes[0])
    a = canonical_axis(param.tile_param.axis, len(x), "Tile axis")
    if param.tile_param.tiles <= 0:
        raise ShapeError("Tile tiles must be positive")
    x[a] *= param.tile_param.tiles
    return ShapeResult([tuple(x)])


@rule("Silence")
def _silence(param, in_shapes):
    return ShapeResult([])


@rule("Permute")
def _permute(param, in_shapes):
    need(in_shapes, 1, "Permute")
    x = in_shapes[0]
    order = list(param.permute_param.order)
    for i in range(len(x)):
        if i not in order:
            order.append(i)
    if sorted(order) != list(range(len(x))):
        raise ShapeError(f"Permute order {list(param.permute_param.order)} is not a permutation of {len(x)} axes")
    return ShapeResult([tuple(x[i] for i in order)])


