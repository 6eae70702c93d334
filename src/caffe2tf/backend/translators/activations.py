"""Element-wise activations and Softmax."""
from __future__ import annotations

import keras
import numpy as np

from caffe2tf.frontend.shapes import canonical_axis
from caffe2tf.backend import layout
from caffe2tf.backend.context import weights_of
from caffe2tf.backend.layers import CaffeElementwise
from caffe2tf.backend.registry import translator


def _prelu(x, slopes: np.ndarray, x_shape, name: str):
    """Keras PReLU with Caffe's per-channel (axis 1) or shared (one value) slopes."""
    rank = len(x_shape)
    ch = layout.to_keras_axis(1, rank) if rank >= 2 else None
    shared_axes = [a for a in range(1, rank) if a != ch or slopes.size == 1]
    alpha_shape = tuple(1 if a in shared_axes else x_shape[1] for a in range(1, rank))
    alpha = np.full(alpha_shape, slopes.reshape(-1)[0], np.float32) if slopes.size == 1 \
        else slopes.astype(np.float32).reshape(alpha_shape)
    layer = keras.layers.PReLU(shared_axes=shared_axes or None, name=name)
    y = layer(x)
    layer.set_weights([alpha])
    return y


@translator("ReLU")
def relu(node, inputs, ctx):
    """ReLU, or LeakyReLU for ``negative_slope`` > 0 (PReLU with a fixed slope if < 0)."""
    ns = node.param.relu_param.negative_slope
    name = ctx.layer_name(node)
    if ns == 0:
        return [keras.layers.ReLU(name=name)(inputs[0])]
    if ns > 0:
        return [keras.layers.LeakyReLU(negative_slope=ns, name=name)(inputs[0])]
    return [_prelu(inputs[0], np.array([ns], np.float32), ctx.in_shapes(node)[0], name)]


@translator("PReLU")
def prelu(node, inputs, ctx):
    """Keras PReLU: ``max(x, 0) + slope * min(x, 0)`` per channel or shared."""
    (slopes,) = weights_of(node, 1)
    return [_prelu(inputs[0], slopes, ctx.in_shapes(node)[0], ctx.layer_name(node))]


@translator("ELU")
def elu(node, inputs, ctx):
    """Keras ELU(alpha)."""
    return [keras.layers.ELU(alpha=node.param.elu_param.alpha, name=ctx.layer_name(node))(inputs[0])]


@translator("Sigmoid")
def sigmoid(node, inputs, ctx):
    """Activation("sigmoid")."""
    return [keras.layers.Activation("sigmoid", name=ctx.layer_name(node))(inputs[0])]


@translator("TanH")
def tanh(node, inputs, ctx):
    """Activation("tanh")."""
    return [keras.layers.Activation("tanh", name=ctx.layer_name(node))(inputs[0])]


@translator("ReLU6")
def relu6(node, inputs, ctx):
    """ReLU capped at ``relu6_param.threshold`` (6)."""
    return [keras.layers.ReLU(max_value=node.param.relu6_param.threshold, name=ctx.layer_name(node))(inputs[0])]


def _elementwise(op: str, doc: str, params=None):
    def fn(node, inputs, ctx):
        return [CaffeElementwise(op, params(node.param) if params else None, name=ctx.layer_name(node))(inputs[0])]
    fn.__doc__ = f"CaffeElementwise('{op}'): {doc}."
    fn.__name__ = f"elementwise_{op}"
    return fn


def _triple(sub: str):
    names = ("power", "scale", "shift") if sub == "power_param" else ("base", "scale", "shift")
    return lambda param: {k: getattr(getattr(param, sub), k) for k in names}


translator("AbsVal")(_elementwise("abs", "``|x|``"))
translator("BNLL")(_elementwise("bnll", "``log(1 + exp(x))`` (softplus)"))
translator("Power")(_elementwise("power", "``(shift + scale * x) ^ power``; a constant when ``power * scale == 0``, "
                                          "as in Caffe", _triple("power_param")))
translator("Exp")(_elementwise("exp", "``base ^ (shift + scale * x)`` computed as Caffe's "
                                      "``outer * exp(inner * x)``", _triple("exp_param")))
translator("Log")(_elementwise("log", "``log_base(shift + scale * x)`` computed as Caffe's "
                                      "``log(scale * x + shift) * (1 / log(base))``", _triple("log_param")))
translator("Threshold")(_elementwise("threshold", "1 where ``x > threshold``, else 0",
                                     lambda p: {"threshold": p.threshold_param.threshold}))
translator("Clip")(_elementwise("clip", "``min(max(x, min), max)``",
                                lambda p: {"min": p.clip_param.min, "max": p.clip_param.max}))
translator("Swish")(_elementwise("swish", "``x * sigmoid(beta * x)``", lambda p: {"beta": p.swish_param.beta}))


@translator("Softmax")
def softmax(node, inputs, ctx):
    """Softmax along the Keras axis of Caffe's ``axis``."""
    rank = len(ctx.in_shapes(node)[0])
    axis = layout.to_keras_axis(canonical_axis(node.param.softmax_param.axis, rank), rank)
    return [keras.layers.Softmax(axis=axis, name=ctx.layer_name(node))(inputs[0])]
