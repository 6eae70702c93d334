"""Convolution and Deconvolution (2-D, NCHW in Caffe, NHWC in Keras)."""
from __future__ import annotations

import keras
import numpy as np

from caffe2tf.frontend.shapes import conv_geometry
from caffe2tf.errors import ConversionError
from caffe2tf.backend import layout
from caffe2tf.backend.context import weights_of
from caffe2tf.backend.layers import CaffeGroupedDeconv2D
from caffe2tf.backend.registry import translator


def _check_2d(node, x_shape) -> None:
    axis = node.param.convolution_param.axis
    if len(x_shape) != 4 or axis not in (1, -3):
        raise ConversionError(f"only 2-D {node.type} of a 4-D NCHW input is supported (input {x_shape}, "
                              f"axis {axis})", layer=node.name, line=node.line)


def explicit_dilation(w: np.ndarray, g, *, transposed: bool = False):
    """Put the dilation into the kernel (zeros between the taps) and convolve undilated,
    the same sums, where TensorFlow cannot run it dilated: Keras refuses ``strides > 1``
    with ``dilation_rate > 1``, and TensorFlow's CPU transposed convolution
    (``Conv2DBackpropInput``) fails at call time on any dilation > 1. ``w`` is
    (O, I, kh, kw) or Caffe's deconv (C, O/g, kh, kw); returns (w, kernel, dilation)."""
    if max(g.dilation) == 1 or (max(g.stride) == 1 and not transposed):
        return w, list(g.kernel), list(g.dilation)
    dh, dw = g.dilation
    out = np.zeros(w.shape[:2] + (dh * (w.shape[2] - 1) + 1, dw * (w.shape[3] - 1) + 1), w.dtype)
    out[:, :, ::dh, ::dw] = w
    return out, list(out.shape[2:]), [1, 1]


def same_padding_matches(size: int, kernel_extent: int, stride: int, pad: int, out: int) -> bool:
    """Whether TensorFlow's ``padding="same"`` gives Caffe's result for a symmetric
    ``pad``: same output size and same leading pad (the trailing pad only covers
    positions Caffe reads too)."""
    same_out = -(-size // stride)
    total = max((same_out - 1) * stride + kernel_extent - size, 0)
    return same_out == out and total // 2 == pad


@translator("Convolution")
def convolution(node, inputs, ctx):
    """Conv2D (or DepthwiseConv2D when every group is one input channel); symmetric pad as
    ``padding="same"`` where that is identical, else ZeroPadding2D + ``"valid"``."""
    p = node.param.convolution_param
    x_shape, out_shape = ctx.in_shapes(node)[0], ctx.out_shapes(node)[0]
    _check_2d(node, x_shape)
    g = conv_geometry(p, 2)
    blobs = weights_of(node, 2 if p.bias_term else 1)
    w, c_in = blobs[0], x_shape[1]
    w, kernel_size, dilation = explicit_dilation(w, g)
    ext = [d * (k - 1) + 1 for d, k in zip(dilation, kernel_size)]
    x = inputs[0]
    if all(same_padding_matches(x_shape[2 + i], ext[i], g.stride[i], g.pad[i], out_shape[2 + i]) for i in (0, 1)):
        padding = "same"
    else:
        padding = "valid"
        if any(g.pad):
            x = keras.layers.ZeroPadding2D(((g.pad[0],) * 2, (g.pad[1],) * 2), name=ctx.layer_name(node, "_pad"))(x)
    common = dict(kernel_size=tuple(kernel_size), strides=tuple(g.stride), padding=padding,
                  dilation_rate=tuple(dilation), use_bias=p.bias_term, name=ctx.layer_name(node))
    # Zero initialisers: the Caffe weights overwrite them, and drawing random ones costs build time.
    # TF's CPU DepthwiseConv2dNative refuses unequal row/column strides (at call time): grouped Conv2D then
    if p.group > 1 and p.group == c_in and g.stride[0] == g.stride[1]:
        layer = keras.layers.DepthwiseConv2D(depth_multiplier=p.num_output // c_in,
                                             depthwise_initializer="zeros", **common)
        kernel = layout.depthwise_kernel(w, c_in)
    else:
        layer = keras.layers.Conv2D(p.num_output, groups=p.group, kernel_initializer="zeros", **common)
        kernel = layout.conv_kernel_oihw_to_hwio(w)
    y = layer(x)
    layer.set_weights([kernel] + ([blobs[1]] if p.bias_term else []))
    return [y]


@translator("Deconvolution")
def deconvolution(node, inputs, ctx):
    """Conv2DTranspose ("valid") then Caffe's crop of ``pad`` per side; with groups, one
    transposed convolution per group (:class:`CaffeGroupedDeconv2D`)."""
    p = node.param.convolution_param
    x_shape, out_shape = ctx.in_shapes(node)[0], ctx.out_shapes(node)[0]
    _check_2d(node, x_shape)
    g = conv_geometry(p, 2)
    blobs = weights_of(node, 2 if p.bias_term else 1)
    w, kernel_size, dilation = explicit_dilation(blobs[0], g, transposed=True)
    kernel = layout.deconv_kernel_to_keras(w)
    crop = []
    for i in (0, 1):
        ext = g.dilation[i] * (g.kernel[i] - 1) + 1
        full = x_shape[2 + i] * g.stride[i] + max(ext - g.stride[i], 0)  # Keras's "valid" length
        crop.append((g.pad[i], full - g.pad[i] - out_shape[2 + i]))
    weights = [kernel] + ([blobs[1]] if p.bias_term else [])
    if p.group == 1:
        layer = keras.layers.Conv2DTranspose(p.num_output, tuple(kernel_size), strides=tuple(g.stride), padding="valid",
                                             dilation_rate=tuple(dilation), use_bias=p.bias_term,
                                             kernel_initializer="zeros", name=ctx.layer_name(node))
        y = layer(inputs[0])
        layer.set_weights(weights)
        if any(c for pair in crop for c in pair):
            y = keras.layers.Cropping2D(tuple(crop), name=ctx.layer_name(node, "_crop"))(y)
        return [y]
    layer = CaffeGroupedDeconv2D(p.num_output, tuple(kernel_size), tuple(g.stride), tuple(dilation), p.group,
                                 tuple(crop), use_bias=p.bias_term, name=ctx.layer_name(node))
    y = layer(inputs[0])
    layer.set_weights(weights)
    return [y]
