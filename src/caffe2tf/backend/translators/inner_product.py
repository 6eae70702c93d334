"""InnerProduct: Dense on Caffe's flatten of the axes from ``axis`` on."""
from __future__ import annotations

import math

import keras

from caffe2tf.frontend.shapes import canonical_axis
from caffe2tf.backend import layout
from caffe2tf.backend.context import weights_of
from caffe2tf.backend.layers import CaffeReshape
from caffe2tf.backend.registry import translator
from caffe2tf.backend.translators.shape_ops import layouts_agree, reshape_as_caffe


@translator("InnerProduct")
def inner_product(node, inputs, ctx):
    """Dense. After a 4-D bottom flattened from axis 1 the weight columns are permuted
    (``layout.inner_product_weight_after_nhwc``) so the NHWC tensor is flattened
    without a transpose; other axes go through Caffe-order reshapes."""
    p = node.param.inner_product_param
    x_shape, out_shape = ctx.in_shapes(node)[0], ctx.out_shapes(node)[0]
    rank = len(x_shape)
    axis = canonical_axis(p.axis, rank)
    blobs = weights_of(node, 2 if p.bias_term else 1)
    k = math.prod(x_shape[axis:])
    w_nk = blobs[0].T if p.transpose else blobs[0]
    x = inputs[0]
    if rank == 4 and axis == 1 and not layouts_agree(x_shape):
        w_nk = layout.inner_product_weight_after_nhwc(w_nk, *x_shape[1:])
        x = keras.layers.Flatten(name=ctx.layer_name(node, "_flatten"))(x)
    elif rank == 4 and axis == 3:  # Dense over W: work on the NCHW tensor
        x = _to_caffe_order(x, x_shape, ctx, node)
    elif axis == 0:  # Caffe's M = 1: one row of all elements
        x = reshape_as_caffe(x, x_shape, (1, k), ctx, node, "_flatten")
    elif rank - axis > 1 or rank == 4:
        flat = tuple(x_shape[:axis]) + (k,)
        x = reshape_as_caffe(x, x_shape, flat, ctx, node, "_flatten")
        if len(flat) == 4:  # a 4-D flatten (of a 5-D+ bottom) is NHWC in Keras; Dense needs Caffe's last axis
            x = _to_caffe_order(x, flat, ctx, node)
    dense = keras.layers.Dense(p.num_output, use_bias=p.bias_term, kernel_initializer="zeros",
                               name=ctx.layer_name(node))
    y = dense(x)
    dense.set_weights([layout.inner_product_kernel(w_nk, transpose=False)] + ([blobs[1]] if p.bias_term else []))
    if axis == 0:
        y = CaffeReshape([p.num_output], name=ctx.layer_name(node, "_unflatten"))(y)
    elif len(out_shape) == 4:  # (N, C, H, num_output) in Caffe order -> NHWC
        if layouts_agree(out_shape):
            y = keras.layers.Reshape(layout.to_keras_shape(out_shape)[1:], name=ctx.layer_name(node, "_to_nhwc"))(y)
        else:
            y = keras.layers.Permute(layout.NCHW_TO_NHWC[1:], name=ctx.layer_name(node, "_to_nhwc"))(y)
    return [y]


def _to_caffe_order(x, x_shape, ctx, node):
    """The NHWC tensor of a 4-D value as an NCHW tensor."""
    if layouts_agree(x_shape):
        return keras.layers.Reshape(tuple(x_shape[1:]), name=ctx.layer_name(node, "_to_nchw"))(x)
    return keras.layers.Permute(layout.NHWC_TO_NCHW[1:], name=ctx.layer_name(node, "_to_nchw"))(x)
