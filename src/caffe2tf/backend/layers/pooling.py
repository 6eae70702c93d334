"""Keras layers for Caffe's MAX/AVE pooling (window clipped to the input, Caffe's rounding).

Registered serializable as ``caffe2tf>ClassName``; rank-4 inputs are NHWC (see
:mod:`caffe2tf.backend.layout`). Import :mod:`caffe2tf.backend.layers` to register them all.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from caffe2tf.backend import caffe_math
from caffe2tf.backend.layers._base import _pair, serializable

__all__ = ["CaffePooling2D"]


@serializable
class CaffePooling2D(keras.layers.Layer):
    """Caffe's MAX/AVE pooling of an NHWC tensor.

    Symmetric ``pad``; ``output_size`` as Caffe computed it (ceil or floor
    rounding, last window starting inside the padded input). MAX takes the
    maximum over the window clipped to the input (padding is -inf); AVE sums the
    real pixels and divides by the window clipped to ``[-pad, size + pad)``.

    Args:
        mode: ``"max"`` or ``"ave"``.
        pool_size, strides, pad, output_size: ``(h, w)`` pairs.

    Input shape:
        4D tensor `(batch, H, W, C)`.

    Output shape:
        `(batch, output_size[0], output_size[1], C)`.
    """

    def __init__(self, mode: str, pool_size, strides, pad, output_size, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "ave"):
            raise ValueError(f"mode must be 'max' or 'ave', received mode={mode!r}")
        self.mode = mode
        self.pool_size, self.strides = _pair(pool_size), _pair(strides)
        self.pad, self.output_size = _pair(pad), _pair(output_size)

    def build(self, input_shape):
        h, w = int(input_shape[1]), int(input_shape[2])
        (kh, kw), (sh, sw), (ph, pw), (oh, ow) = self.pool_size, self.strides, self.pad, self.output_size
        self._pads = [[0, 0], [ph, caffe_math.pool_overhang(h, kh, sh, ph, oh)],
                      [pw, caffe_math.pool_overhang(w, kw, sw, pw, ow)], [0, 0]]
        self._correction = None
        if self.mode == "ave":
            corr = caffe_math.ave_pool_correction((h, w), self.pool_size, self.strides, self.pad, self.output_size)
            if not np.all(corr == 1):
                self._correction = corr[None, :, :, None]

    def call(self, x):
        if any(p for pair in self._pads for p in pair):
            x = ops.pad(x, self._pads, constant_values=-math.inf if self.mode == "max" else 0.0)
        if self.mode == "max":
            return ops.max_pool(x, self.pool_size, self.strides, padding="valid")
        y = ops.average_pool(x, self.pool_size, self.strides, padding="valid")
        if self._correction is not None:
            y = y * ops.convert_to_tensor(self._correction, dtype=y.dtype)
        return y

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "pool_size": list(self.pool_size),
                "strides": list(self.strides), "pad": list(self.pad), "output_size": list(self.output_size)}
