"""Keras layers for Caffe's Slice/Crop and Reshape/Flatten across the batch axis.

Registered serializable as ``caffe2tf>ClassName``; rank-4 inputs are NHWC (see
:mod:`caffe2tf.backend.layout`). Import :mod:`caffe2tf.backend.layers` to register them all.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

from caffe2tf.backend.layers._base import serializable

__all__ = ["CaffeSlice", "CaffeReshape"]


@serializable
class CaffeSlice(keras.layers.Layer):
    """``x[begin:end]`` on every axis (batch included; ``None`` keeps an axis whole):
    Slice tops and Crop.

    Input shape:
        Any tensor of rank ``len(begin)``.

    Output shape:
        Each axis ``len(range(d)[begin:end])``.
    """

    def __init__(self, begin: Sequence[int | None], end: Sequence[int | None], **kwargs):
        super().__init__(**kwargs)
        if len(begin) != len(end):
            raise ValueError(f"begin and end differ in length, received begin={begin}, end={end}")
        self.begin = [None if b is None else int(b) for b in begin]
        self.end = [None if e is None else int(e) for e in end]

    def call(self, x):
        return x[tuple(slice(b, e) for b, e in zip(self.begin, self.end))]

    def compute_output_shape(self, input_shape):
        return tuple(None if d is None else len(range(*slice(b, e).indices(int(d))))
                     for d, b, e in zip(input_shape, self.begin, self.end))

    def get_config(self):
        return {**super().get_config(), "begin": self.begin, "end": self.end}


@serializable
class CaffeReshape(keras.layers.Layer):
    """Reshape including the batch axis (``-1`` infers one axis), for Caffe
    Reshape/Flatten that change the batch axis.

    Input shape:
        Any tensor.

    Output shape:
        ``target_shape`` (batch axis included), ``-1`` inferred.
    """

    def __init__(self, target_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.target_shape = [int(d) for d in target_shape]

    def call(self, x):
        return ops.reshape(x, self.target_shape)

    def compute_output_shape(self, input_shape):
        known = [int(d) for d in self.target_shape if d != -1]
        total = None if any(d is None for d in input_shape) else int(np.prod([int(d) for d in input_shape]))
        fill = None if total is None or -1 not in self.target_shape else total // max(int(np.prod(known)), 1)
        return tuple(fill if d == -1 else int(d) for d in self.target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}
