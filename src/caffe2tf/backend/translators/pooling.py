"""Pooling: MAX and AVE with Caffe's rounding, padding and AVE divisor."""
from __future__ import annotations

import keras

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.shapes import pool_geometry
from caffe2tf.errors import ConversionError
from caffe2tf.backend import caffe_math
from caffe2tf.backend.translators.conv import same_padding_matches
from caffe2tf.backend.layers import CaffePooling2D
from caffe2tf.backend.layers.unpooling import CaffeMaxPoolWithMask
from caffe2tf.backend.registry import translator

PP = caffe_pb2.PoolingParameter


@translator("Pooling")
def pooling(node, inputs, ctx):
    """Standard Keras pooling where it is identical to Caffe's (no pad and no ceil
    overhang; global; MAX whose pad equals TensorFlow's "same"), else
    :class:`CaffePooling2D` (-inf padding for MAX, Caffe's divisor map for AVE);
    MAX with a second top: :class:`CaffeMaxPoolWithMask` (Caffe's ``h * W + w`` mask,
    first maximum wins)."""
    p = node.param.pooling_param
    x_shape = ctx.in_shapes(node)[0]
    if len(x_shape) != 4:
        raise ConversionError(f"Pooling needs a 4-D input, got {x_shape}", layer=node.name, line=node.line)
    if p.pool not in (PP.MAX, PP.AVE):
        raise ConversionError("only MAX and AVE pooling are converted (STOCHASTIC is training-only)",
                              layer=node.name, line=node.line)
    is_max = p.pool == PP.MAX
    h, w = x_shape[2], x_shape[3]
    g = pool_geometry(p, h, w)
    if len(node.outputs) == 2:
        if not is_max:
            raise ConversionError("only MAX pooling has a mask top", layer=node.name, line=node.line)
        return CaffeMaxPoolWithMask(g.kernel, g.stride, g.pad, g.out, name=ctx.layer_name(node))(inputs[0])
    if len(node.outputs) != 1:
        raise ConversionError(f"Pooling has {len(node.outputs)} tops (1, or 2 for MAX with a mask)",
                              layer=node.name, line=node.line)
    name = ctx.layer_name(node)
    x = inputs[0]
    if g.out == (1, 1) and g.kernel == (h, w) and g.pad == (0, 0):
        layer = (keras.layers.GlobalMaxPooling2D if is_max else keras.layers.GlobalAveragePooling2D)(
            keepdims=True, name=name)
        return [layer(x)]
    overhang = [caffe_math.pool_overhang(size, k, s, pd, o)
                for size, k, s, pd, o in zip((h, w), g.kernel, g.stride, g.pad, g.out)]
    std = keras.layers.MaxPooling2D if is_max else keras.layers.AveragePooling2D
    if g.pad == (0, 0) and overhang == [0, 0]:
        return [std(g.kernel, g.stride, padding="valid", name=name)(x)]
    if is_max and all(same_padding_matches(size, k, s, pd, o)
                      for size, k, s, pd, o in zip((h, w), g.kernel, g.stride, g.pad, g.out)):
        return [std(g.kernel, g.stride, padding="same", name=name)(x)]
    return [CaffePooling2D("max" if is_max else "ave", g.kernel, g.stride, g.pad, g.out, name=name)(x)]
