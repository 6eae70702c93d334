"""Input, Dropout, Split and Silence: the layers that only route tensors."""
from __future__ import annotations

import keras

from caffe2tf.backend import layout
from caffe2tf.backend.layers import CaffeElementwise
from caffe2tf.backend.registry import translator


@translator("Input")
def input_layer(node, inputs, ctx):
    """A Keras ``Input`` per top; NHWC, or NCHW plus one transpose with ``input_layout="nchw"``."""
    outs = []
    for v in node.outputs:
        shape = ctx.shape(v)
        blob = ctx.graph.values[v].blob
        if ctx.input_layout == "nchw" and len(shape) == 4:
            t = keras.Input(shape=shape[1:], name=ctx.unique_name(blob, node))
            ctx.model_inputs[v] = t
            t = keras.layers.Permute((2, 3, 1), name=ctx.layer_name(node, "_to_nhwc"))(t)
        else:
            t = keras.Input(shape=layout.to_keras_shape(shape)[1:], name=ctx.unique_name(blob, node))
            ctx.model_inputs[v] = t
        outs.append(t)
    return outs


@translator("Dropout")
def dropout(node, inputs, ctx):
    """Identity: Caffe's TEST-phase Dropout (inverted dropout) passes its input through;
    with the forks' ``scale_train: false`` it scales by ``1 - dropout_ratio``."""
    p = node.param.dropout_param
    if p.HasField("scale_train") and not p.scale_train:
        keep = {"power": 1.0, "scale": 1.0 - float(p.dropout_ratio), "shift": 0.0}
        return [CaffeElementwise("power", keep, name=ctx.layer_name(node))(inputs[0])]
    return [keras.layers.Identity(name=ctx.layer_name(node))(inputs[0])]


@translator("Split")
def split(node, inputs, ctx):
    """Every top is the bottom."""
    return [keras.layers.Identity(name=ctx.layer_name(node, f"_{i}"))(inputs[0]) for i in range(len(node.outputs))]


@translator("Silence")
def silence(node, inputs, ctx):
    """No output."""
    return []
