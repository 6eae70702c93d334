"""Keras layers for Caffe's element-wise layers: activations with Caffe's constants, weighted Eltwise sums and broadcast binary ops.

Registered serializable as ``caffe2tf>ClassName``; rank-4 inputs are NHWC (see
:mod:`caffe2tf.backend.layout`). Import :mod:`caffe2tf.backend.layers` to register them all.
"""
from __future__ import annotations

import math

from typing import Sequence

import keras
import numpy as np
from keras import ops

from caffe2tf.backend import caffe_math
from caffe2tf.backend.layers._base import serializable

__all__ = ["CaffeElementwise", "CaffeWeightedSum", "CaffeBroadcastOp"]


@serializable
class CaffeElementwise(keras.layers.Layer):
    """Caffe's element-wise maps, computed as Caffe does:

    ``abs``; ``bnll`` (softplus); ``power`` ``(shift + scale*x)^power``;
    ``exp`` ``outer * exp(inner * x)``; ``log`` ``log(scale*x + shift) * base_scale``;
    ``threshold`` ``x > t``; ``clip`` ``min(max(x, lo), hi)``; ``swish`` ``x * sigmoid(beta*x)``.

    Input shape:
        Any tensor.

    Output shape:
        Same as the input.
    """

    OPS = ("abs", "bnll", "power", "exp", "log", "threshold", "clip", "swish")

    def __init__(self, op: str, params: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if op not in self.OPS:
            raise ValueError(f"op must be one of {self.OPS}, received op={op!r}")
        self.op, self.params = op, {k: float(v) for k, v in (params or {}).items()}

    def call(self, x):
        p, f = self.params, np.float32
        if self.op == "abs":
            return ops.abs(x)
        if self.op == "bnll":
            return ops.softplus(x)
        if self.op == "power":
            power, scale, shift = p["power"], p["scale"], p["shift"]
            if power * scale == 0:
                return ops.zeros_like(x) + f(1.0 if power == 0 else shift ** power)
            if scale != 1:
                x = x * f(scale)
            if shift != 0:
                x = x + f(shift)
            return x if power == 1 else ops.power(x, f(power))
        if self.op == "exp":
            inner, outer = caffe_math.exp_constants(p["base"], p["scale"], p["shift"])
            y = ops.exp(x if inner == 1 else x * inner)
            return y if outer == 1 else y * outer
        if self.op == "log":
            if p["scale"] != 1:
                x = x * f(p["scale"])
            if p["shift"] != 0:
                x = x + f(p["shift"])
            base_scale = caffe_math.log_base_scale(p["base"])
            y = ops.log(x)
            return y if base_scale == 1 else y * base_scale
        if self.op == "threshold":
            return ops.cast(ops.greater(x, f(p["threshold"])), x.dtype)
        if self.op == "clip":
            return ops.minimum(ops.maximum(x, f(p["min"])), f(p["max"]))
        return x * ops.sigmoid(x * f(p["beta"]))  # swish

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "op": self.op, "params": dict(self.params)}


@serializable
class CaffeWeightedSum(keras.layers.Layer):
    """Eltwise SUM with coefficients: ``coeffs[0]*x0 + coeffs[1]*x1 + ...`` in Caffe's order.

    Input shape:
        A list of tensors of one shape, one per coefficient.

    Output shape:
        That shape.
    """

    def __init__(self, coeffs: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        self.coeffs = [float(c) for c in coeffs]

    def call(self, inputs):
        y = None
        for c, x in zip(self.coeffs, inputs):
            term = x if c == 1 else x * np.float32(c)
            y = term if y is None else y + term
        return y

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "coeffs": self.coeffs}


@serializable
class CaffeBroadcastOp(keras.layers.Layer):
    """Scale/Bias with a second bottom: ``x * p`` or ``x + p`` where ``p`` spans some
    of ``x``'s Caffe axes. ``p`` is brought to Caffe order (``in_perm``), reshaped to
    ``caffe_shape`` (1 outside its span, -1 for a batch axis) and permuted into
    ``x``'s Keras layout (``out_perm``).

    Input shape:
        A list `[x, y]`, ``y`` broadcasting against ``x`` in Caffe's axis order.

    Output shape:
        The shape of ``x``.
    """

    def __init__(self, op: str, caffe_shape: Sequence[int], in_perm: Sequence[int] | None = None,
                 out_perm: Sequence[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        if op not in ("mul", "add"):
            raise ValueError(f"op must be 'mul' or 'add', received op={op!r}")
        self.op, self.caffe_shape = op, [int(d) for d in caffe_shape]
        self.in_perm = list(in_perm) if in_perm else None
        self.out_perm = list(out_perm) if out_perm else None

    def call(self, inputs):
        x, p = inputs
        if self.in_perm:
            p = ops.transpose(p, self.in_perm)
        p = ops.reshape(p, self.caffe_shape)
        if self.out_perm:
            p = ops.transpose(p, self.out_perm)
        return x * p if self.op == "mul" else x + p

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "op": self.op, "caffe_shape": self.caffe_shape,
                "in_perm": self.in_perm, "out_perm": self.out_perm}
