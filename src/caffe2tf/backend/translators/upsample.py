"""``Upsample``, a type name two forks use (``Node.reading`` says which):
YOLO's nearest-neighbour upsampling (``"nearest"``, one bottom) and SegNet/ENet's
max-unpooling with a MAX Pooling mask (``"unpool"``, two bottoms)."""
from __future__ import annotations

import keras

from caffe2tf.errors import ConversionError
from caffe2tf.backend.registry import translator
from caffe2tf.backend.layers.unpooling import CaffeMaxUnpool

READINGS = ("nearest", "unpool")


@translator("Upsample")
def upsample(node, inputs, ctx):
    """``nearest``: Keras UpSampling2D (``out[h, w] = in[h // s, w // s]``, an exact repeat);
    ``unpool``: :class:`CaffeMaxUnpool` (zeros, then each value written at its mask index,
    later writes winning)."""
    if node.reading not in READINGS:
        raise ConversionError(f"Upsample has no decided reading ({node.reading!r}); it must be one of "
                              f"{READINGS} (the reader decides from the bottoms)", layer=node.name, line=node.line)
    in_shapes = ctx.in_shapes(node)
    (n, c, oh, ow), x = ctx.out_shapes(node)[0], in_shapes[0]
    if node.reading == "unpool":
        if len(inputs) != 2 or in_shapes[1] != x:
            raise ConversionError(f"unpooling Upsample needs values and a mask of the same shape, got {in_shapes}",
                                  layer=node.name, line=node.line)
        return [CaffeMaxUnpool((oh, ow), name=ctx.layer_name(node))(list(inputs))]
    if len(inputs) != 1 or oh % x[2] or ow % x[3]:
        raise ConversionError(f"nearest Upsample of {x} to {(n, c, oh, ow)} is not an integer repeat",
                              layer=node.name, line=node.line)
    size = (oh // x[2], ow // x[3])
    if size == (1, 1):
        return [keras.layers.Identity(name=ctx.layer_name(node))(inputs[0])]
    return [keras.layers.UpSampling2D(size, interpolation="nearest", name=ctx.layer_name(node))(inputs[0])]
