"""Keras layer for the SegNet/ENet fork's ``BN`` in its default LEARN mode.

That fork's BN normalises with the batch's own statistics in every phase unless
``bn_mode: INFERENCE`` (then it is the affine ``scale * x + shift``, see
``normalization.py``). Registered serializable under the package ``caffe2tf``.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from caffe2tf.backend.layers._base import serializable


@serializable
class CaffeBatchStatBN(keras.layers.Layer):
    """SegNet/ENet BN, LEARN mode (``bn_layer.cpp``): per channel, ``E[x]`` and ``E[x^2]``
    as the batch mean of per-sample spatial means, ``var = E[x^2] - E[x]^2`` (biased,
    over N, H, W), then ``(x - E[x]) / sqrt(var + eps) * scale + shift``; eps is the
    fork's fixed ``1e-9``. ``scale`` and ``shift`` are weights of shape ``(C,)``.

    Args:
        channels: C.
        eps: added to the variance inside the root.

    Input shape: ``(N, H, W, C)``.
    Output shape: same as input.
    """

    def __init__(self, channels: int, eps: float = 1e-9, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.eps = int(channels), float(eps)

    def build(self, input_shape):
        if int(input_shape[-1]) != self.channels:
            raise ValueError(f"expected {self.channels} channels, received input_shape={input_shape}")
        self.scale = self.add_weight(name="scale", shape=(self.channels,), initializer="ones")
        self.shift = self.add_weight(name="shift", shape=(self.channels,), initializer="zeros")

    def call(self, x):
        mean = ops.mean(ops.mean(x, axis=(1, 2), keepdims=True), axis=0, keepdims=True)
        mean_sq = ops.mean(ops.mean(x * x, axis=(1, 2), keepdims=True), axis=0, keepdims=True)
        var = mean_sq - mean * mean
        y = (x - mean) / ops.sqrt(var + np.float32(self.eps))
        return y * self.scale + self.shift

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "eps": self.eps}
