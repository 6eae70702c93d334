"""Keras layers for Caffe's LRN, MVN and per-channel affine (Scale/Bias/BatchNorm after folding).

Registered serializable as ``caffe2tf>ClassName``; rank-4 inputs are NHWC (see
:mod:`caffe2tf.backend.layout`). Import :mod:`caffe2tf.backend.layers` to register them all.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

from caffe2tf.backend.layers._base import serializable

__all__ = ["CaffeLRN", "CaffeMeanVarianceNorm", "CaffeAffine"]


@serializable
class CaffeLRN(keras.layers.Layer):
    """Caffe's LRN of an NHWC tensor.

    ACROSS_CHANNELS: ``x * (k + alpha/n * sum of x^2 over n channels)^-beta``;
    WITHIN_CHANNEL: ``x * (1 + alpha * mean of x^2 over an n x n window, zero
    padded, divisor n^2)^-beta`` (``k`` unused, as in Caffe). ``n`` is odd.

    Input shape:
        4D tensor `(batch, H, W, C)`.

    Output shape:
        Same as the input.
    """

    def __init__(self, local_size: int, alpha: float, beta: float, k: float = 1.0,
                 norm_region: str = "across_channels", **kwargs):
        super().__init__(**kwargs)
        if local_size < 1 or local_size % 2 == 0:
            raise ValueError(f"local_size must be odd and positive, received local_size={local_size}")
        if norm_region not in ("across_channels", "within_channel"):
            raise ValueError(f"norm_region must be 'across_channels' or 'within_channel', received {norm_region!r}")
        self.local_size, self.alpha, self.beta, self.k = int(local_size), float(alpha), float(beta), float(k)
        self.norm_region = norm_region

    def call(self, x):
        n, pre = self.local_size, (self.local_size - 1) // 2
        sq = x * x
        if self.norm_region == "across_channels":
            c = x.shape[-1]
            padded = ops.pad(sq, [[0, 0], [0, 0], [0, 0], [pre, n - 1 - pre]])
            total = padded[..., 0:c]
            for i in range(1, n):
                total = total + padded[..., i:i + c]
            scale = self.k + np.float32(self.alpha / n) * total
        else:
            padded = ops.pad(sq, [[0, 0], [pre, pre], [pre, pre], [0, 0]])
            scale = 1.0 + np.float32(self.alpha) * ops.average_pool(padded, (n, n), (1, 1), padding="valid")
        return x * ops.power(scale, -self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "local_size": self.local_size, "alpha": self.alpha,
                "beta": self.beta, "k": self.k, "norm_region": self.norm_region}


@serializable
class CaffeMeanVarianceNorm(keras.layers.Layer):
    """``(x - mean) / std`` over ``axes`` (Keras axes): Caffe's MVN
    (``std = sqrt(var) + eps``) or BatchNorm with batch statistics
    (``eps_inside_sqrt=True``: ``std = sqrt(var + eps)``).

    Input shape:
        Any tensor whose axes include ``axes``.

    Output shape:
        Same as the input.
    """

    def __init__(self, axes: Sequence[int], normalize_variance: bool = True, eps: float = 1e-9,
                 eps_inside_sqrt: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.axes = [int(a) for a in axes]
        self.normalize_variance, self.eps, self.eps_inside_sqrt = bool(normalize_variance), float(eps), bool(eps_inside_sqrt)

    def call(self, x):
        d = x - ops.mean(x, axis=self.axes, keepdims=True)
        if not self.normalize_variance:
            return d
        var = ops.mean(d * d, axis=self.axes, keepdims=True)
        std = ops.sqrt(var + self.eps) if self.eps_inside_sqrt else ops.sqrt(var) + self.eps
        return d / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize_variance": self.normalize_variance,
                "eps": self.eps, "eps_inside_sqrt": self.eps_inside_sqrt}


@serializable
class CaffeAffine(keras.layers.Layer):
    """``y = (x - mean) * scale + bias`` with parameters of ``param_shape`` (full
    rank, broadcast against the input): BatchNorm, BN, Scale, Bias. Each term is
    optional; the translator sets them with :meth:`set_parameters`.

    Input shape:
        Any tensor; ``param_shape`` broadcasts against it.

    Output shape:
        Same as the input.
    """

    def __init__(self, param_shape: Sequence[int], use_mean: bool = False, use_scale: bool = True,
                 use_bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.param_shape = tuple(int(d) for d in param_shape)
        self.use_mean, self.use_scale, self.use_bias = bool(use_mean), bool(use_scale), bool(use_bias)

    def build(self, input_shape):
        s = self.param_shape
        self.mean = self.add_weight(name="mean", shape=s, initializer="zeros", trainable=False) if self.use_mean else None
        self.scale = self.add_weight(name="scale", shape=s, initializer="ones") if self.use_scale else None
        self.bias = self.add_weight(name="bias", shape=s, initializer="zeros") if self.use_bias else None

    def set_parameters(self, mean=None, scale=None, bias=None) -> None:
        """Assign the parameters by name (``set_weights`` lists trainable weights first)."""
        for var, value in ((self.mean, mean), (self.scale, scale), (self.bias, bias)):
            if (var is None) != (value is None):
                raise ValueError(f"{self.name}: parameters given do not match use_mean/use_scale/use_bias")
            if var is not None:
                var.assign(np.asarray(value, np.float32).reshape(self.param_shape))

    def call(self, x):
        if self.mean is not None:
            x = x - self.mean
        if self.scale is not None:
            x = x * self.scale
        if self.bias is not None:
            x = x + self.bias
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "param_shape": list(self.param_shape), "use_mean": self.use_mean,
                "use_scale": self.use_scale, "use_bias": self.use_bias}
