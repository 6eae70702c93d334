"""Concat, Slice, Flatten, Reshape, Crop, Permute and Tile: axis bookkeeping via ``layout``."""
from __future__ import annotations

import keras

from caffe2tf.frontend.shapes import canonical_axis
from caffe2tf.errors import ConversionError
from caffe2tf.backend import layout
from caffe2tf.backend.layers import CaffeReshape, CaffeSlice
from caffe2tf.backend.registry import translator


def layouts_agree(caffe_shape) -> bool:
    """Whether a value's Keras tensor holds its elements in Caffe's order (rank != 4,
    or a 4-D value with C == 1 or H*W == 1), so a reshape needs no transpose."""
    return len(caffe_shape) != 4 or caffe_shape[1] == 1 or caffe_shape[2] * caffe_shape[3] == 1


def reshape_as_caffe(x, in_shape, out_shape, ctx, node, suffix: str = ""):
    """Reshape the Keras tensor of a value of Caffe shape ``in_shape`` into the
    Keras tensor of Caffe's row-major reshape to ``out_shape``. Transposes only
    where the layouts disagree (4-D values with both C > 1 and H*W > 1)."""
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)
    if not layouts_agree(in_shape):
        x = keras.layers.Permute(layout.NHWC_TO_NCHW[1:], name=ctx.layer_name(node, suffix + "_to_nchw"))(x)
    permute_after = not layouts_agree(out_shape)
    target = out_shape if permute_after else layout.to_keras_shape(out_shape)
    if out_shape and in_shape and out_shape[0] == in_shape[0]:
        x = keras.layers.Reshape(target[1:], name=ctx.layer_name(node, suffix))(x)
    else:  # the batch axis changes: only this batch size works
        x = CaffeReshape(list(target), name=ctx.layer_name(node, suffix))(x)
    if permute_after:
        x = keras.layers.Permute(layout.NCHW_TO_NHWC[1:], name=ctx.layer_name(node, suffix + "_to_nhwc"))(x)
    return x


def slice_layer(x_shape, ranges: dict[int, tuple[int, int]], name: str) -> CaffeSlice:
    """A :class:`CaffeSlice` taking ``[begin, end)`` of the given Caffe axes."""
    rank = len(x_shape)
    begin: list[int | None] = [None] * rank
    end: list[int | None] = [None] * rank
    for axis, (b, e) in ranges.items():
        k = layout.to_keras_axis(axis, rank)
        begin[k], end[k] = b, e
    return CaffeSlice(begin, end, name=name)


@translator("Concat")
def concat(node, inputs, ctx):
    """Concatenate along the Keras axis of Caffe's ``axis`` (``concat_dim``)."""
    p = node.param.concat_param
    rank = len(ctx.in_shapes(node)[0])
    axis = canonical_axis(p.concat_dim if p.HasField("concat_dim") else p.axis, rank)
    if len(inputs) == 1:
        return [keras.layers.Identity(name=ctx.layer_name(node))(inputs[0])]
    return [keras.layers.Concatenate(axis=layout.to_keras_axis(axis, rank), name=ctx.layer_name(node))(inputs)]


@translator("Slice")
def slice_(node, inputs, ctx):
    """One :class:`CaffeSlice` per top, at ``slice_point``s or in equal parts."""
    p = node.param.slice_param
    x_shape = ctx.in_shapes(node)[0]
    axis = canonical_axis(p.slice_dim if p.HasField("slice_dim") else p.axis, len(x_shape))
    outs, start = [], 0
    for i, shape in enumerate(ctx.out_shapes(node)):
        stop = start + shape[axis]
        outs.append(slice_layer(x_shape, {axis: (start, stop)}, ctx.layer_name(node, f"_{i}"))(inputs[0]))
        start = stop
    return outs


@translator("Flatten")
def flatten(node, inputs, ctx):
    """Caffe's row-major flatten of axes ``axis..end_axis``."""
    return [reshape_as_caffe(inputs[0], ctx.in_shapes(node)[0], ctx.out_shapes(node)[0], ctx, node)]


@translator("Reshape")
def reshape(node, inputs, ctx):
    """Caffe's row-major reshape (0 copies a dimension, -1 infers one)."""
    return [reshape_as_caffe(inputs[0], ctx.in_shapes(node)[0], ctx.out_shapes(node)[0], ctx, node)]


@translator("Crop")
def crop(node, inputs, ctx):
    """Crop bottom 0 to bottom 1's shape from ``axis`` on, at ``offset`` (one for all axes or one each)."""
    p = node.param.crop_param
    x_shape, ref_shape = ctx.in_shapes(node)
    rank = len(x_shape)
    axis = canonical_axis(p.axis, rank)
    n = rank - axis
    offsets = list(p.offset)
    offsets = offsets * n if len(offsets) == 1 else (offsets or [0] * n)
    ranges = {a: (offsets[a - axis], offsets[a - axis] + ref_shape[a]) for a in range(axis, rank)
              if ref_shape[a] != x_shape[a] or offsets[a - axis]}
    if rank == 4 and all(a >= 2 for a in ranges):
        crops = tuple((ranges[a][0], x_shape[a] - ranges[a][1]) if a in ranges else (0, 0) for a in (2, 3))
        return [keras.layers.Cropping2D(crops, name=ctx.layer_name(node))(inputs[0])]
    return [slice_layer(x_shape, ranges, ctx.layer_name(node))(inputs[0])]


@translator("Permute")
def permute(node, inputs, ctx):
    """SSD's Permute: one Keras Permute composed of the layout changes and Caffe's ``order``."""
    x_shape, out_shape = ctx.in_shapes(node)[0], ctx.out_shapes(node)[0]
    rank = len(x_shape)
    order = list(node.param.permute_param.order)
    order += [i for i in range(rank) if i not in order]
    k2c, c2k = layout.keras_to_caffe_perm(rank), layout.caffe_to_keras_perm(len(out_shape))
    q = [k2c[order[c2k[i]]] for i in range(rank)]
    if q[0] != 0:
        raise ConversionError(f"Permute order {order} moves the batch axis", layer=node.name, line=node.line)
    if q == list(range(rank)):
        return [keras.layers.Identity(name=ctx.layer_name(node))(inputs[0])]
    return [keras.layers.Permute(tuple(q[1:]), name=ctx.layer_name(node))(inputs[0])]


@translator("Tile")
def tile(node, inputs, ctx):
    """Concatenate ``tiles`` copies along the Keras axis of Caffe's ``axis`` (Caffe repeats
    the whole block from ``axis`` on, so index j of that axis is input j mod size)."""
    p = node.param.tile_param
    rank = len(ctx.in_shapes(node)[0])
    axis = layout.to_keras_axis(canonical_axis(p.axis, rank), rank)
    if p.tiles == 1:
        return [keras.layers.Identity(name=ctx.layer_name(node))(inputs[0])]
    return [keras.layers.Concatenate(axis=axis, name=ctx.layer_name(node))([inputs[0]] * p.tiles)]
