"""Keras layers for Caffe's ArgMax (ties to the larger index) and Reduction.

Registered serializable as ``caffe2tf>ClassName``; rank-4 inputs are NHWC (see
:mod:`caffe2tf.backend.layout`). Import :mod:`caffe2tf.backend.layers` to register them all.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

from caffe2tf.backend.layers._base import serializable

__all__ = ["CaffeArgMax", "CaffeReduction"]


@serializable
class CaffeArgMax(keras.layers.Layer):
    """Caffe's ArgMax; ties go to the larger index (Caffe sorts (value, index)
    pairs descending). Indices are returned as floats, like Caffe.

    With ``axis`` (a Keras axis) the top-k runs along it. Without, each sample is
    flattened in Caffe order (``in_perm`` first brings it there) and the output
    is Caffe's ``(N, 1 or 2, top_k, ...)`` reshaped to ``out_shape`` (batch -1)
    then permuted by ``out_perm`` into Keras layout.

    Input shape:
        Any tensor.

    Output shape:
        With ``axis``: the input with ``top_k`` on that axis; else ``out_shape`` (batch for ``-1``) permuted by ``out_perm``.
    """

    def __init__(self, top_k: int = 1, out_max_val: bool = False, axis: int | None = None,
                 in_perm: Sequence[int] | None = None, out_shape: Sequence[int] | None = None,
                 out_perm: Sequence[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.top_k, self.out_max_val, self.axis = int(top_k), bool(out_max_val), axis
        self.in_perm = list(in_perm) if in_perm else None
        self.out_shape = list(out_shape) if out_shape else None
        self.out_perm = list(out_perm) if out_perm else None

    def _top_k(self, x):
        n = x.shape[-1]
        values, rev_idx = ops.top_k(ops.flip(x, axis=-1), self.top_k, sorted=True)
        return values, ops.cast((n - 1) - rev_idx, x.dtype)

    def call(self, x):
        if self.axis is not None:
            values, idx = self._top_k(ops.moveaxis(x, self.axis, -1))
            return ops.moveaxis(values if self.out_max_val else idx, -1, self.axis)
        if self.in_perm:
            x = ops.transpose(x, self.in_perm)
        values, idx = self._top_k(ops.reshape(x, (-1, int(np.prod(x.shape[1:])))))
        y = ops.concatenate([idx, values], axis=-1) if self.out_max_val else idx
        y = ops.reshape(y, self.out_shape)
        return ops.transpose(y, self.out_perm) if self.out_perm else y

    def compute_output_shape(self, input_shape):
        if self.axis is not None:
            shape = list(input_shape)
            shape[self.axis] = self.top_k
            return tuple(shape)
        shape = [input_shape[0] if d == -1 else int(d) for d in self.out_shape]
        return tuple(shape[p] for p in self.out_perm) if self.out_perm else tuple(shape)

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "out_max_val": self.out_max_val, "axis": self.axis,
                "in_perm": self.in_perm, "out_shape": self.out_shape, "out_perm": self.out_perm}


@serializable
class CaffeReduction(keras.layers.Layer):
    """Caffe's Reduction over ``axes`` (Keras axes): ``coeff * SUM | ASUM | SUMSQ | MEAN``,
    the result permuted by ``out_perm`` into Caffe's remaining-axis order.

    Input shape:
        Any tensor.

    Output shape:
        The input without ``axes``, permuted by ``out_perm``.
    """

    OPS = ("sum", "asum", "sumsq", "mean")

    def __init__(self, op: str, axes: Sequence[int], coeff: float = 1.0,
                 out_perm: Sequence[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        if op not in self.OPS:
            raise ValueError(f"op must be one of {self.OPS}, received op={op!r}")
        self.op, self.axes, self.coeff = op, [int(a) for a in axes], float(coeff)
        self.out_perm = list(out_perm) if out_perm else None

    def call(self, x):
        coeff = self.coeff
        if self.op == "asum":
            x = ops.abs(x)
        elif self.op == "sumsq":
            x = x * x
        elif self.op == "mean":
            coeff = coeff / int(np.prod([x.shape[a] for a in self.axes]))
        y = ops.sum(x, axis=self.axes)
        if coeff != 1:
            y = y * np.float32(coeff)
        return ops.transpose(y, self.out_perm) if self.out_perm else y

    def compute_output_shape(self, input_shape):
        axes = {a % len(input_shape) for a in self.axes}
        shape = [d for i, d in enumerate(input_shape) if i not in axes]
        return tuple(shape[p] for p in self.out_perm) if self.out_perm else tuple(shape)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "axes": self.axes, "coeff": self.coeff,
                "out_perm": self.out_perm}
