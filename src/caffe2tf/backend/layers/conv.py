"""Keras layers for Caffe's grouped Deconvolution (TensorFlow has no grouped transposed convolution).

Registered serializable as ``caffe2tf>ClassName``; rank-4 inputs are NHWC (see
:mod:`caffe2tf.backend.layout`). Import :mod:`caffe2tf.backend.layers` to register them all.
"""
from __future__ import annotations

import keras
from keras import ops

from caffe2tf.backend.layers._base import _pair, serializable

__all__ = ["CaffeGroupedDeconv2D"]


@serializable
class CaffeGroupedDeconv2D(keras.layers.Layer):
    """Caffe's Deconvolution with ``groups > 1`` (TensorFlow has no grouped
    transposed convolution): one ``conv_transpose`` per group, then Caffe's
    crop of ``pad`` pixels per side (``cropping = ((top, bottom), (left, right))``).
    Kernel ``(kh, kw, filters/groups, in_channels)`` as from
    ``layout.deconv_kernel_to_keras``.

    Input shape:
        4D tensor `(batch, H, W, in_channels)`.

    Output shape:
        `(batch, H * stride + max(dilation * (kh - 1) + 1 - stride, 0) - crop_top - crop_bottom, (same for W), filters)`
        (``conv_transpose``'s "valid" length, which exceeds Caffe's ``(H - 1) * stride + extent`` when the
        extent is below the stride; the crop takes that back).
    """

    def __init__(self, filters: int, kernel_size, strides, dilation_rate, groups: int,
                 cropping, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.groups, self.use_bias = int(filters), int(groups), bool(use_bias)
        self.kernel_size, self.strides = _pair(kernel_size), _pair(strides)
        self.dilation_rate = _pair(dilation_rate)
        self.cropping = tuple(_pair(c) for c in cropping)

    def build(self, input_shape):
        c = int(input_shape[-1])
        if c % self.groups or self.filters % self.groups:
            raise ValueError(f"groups={self.groups} must divide input channels {c} and filters {self.filters}")
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, self.filters // self.groups, c))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def call(self, x):
        cin = x.shape[-1] // self.groups
        outs = [ops.conv_transpose(x[..., g * cin:(g + 1) * cin], self.kernel[..., g * cin:(g + 1) * cin],
                                   self.strides, padding="valid", dilation_rate=self.dilation_rate)
                for g in range(self.groups)]
        y = ops.concatenate(outs, axis=-1)
        (t, b), (l, r) = self.cropping
        y = y[:, t:y.shape[1] - b, l:y.shape[2] - r, :]
        return y + self.bias if self.bias is not None else y

    def compute_output_shape(self, input_shape):
        def size(d, k, s, r, crop):  # conv_transpose's "valid" length, then the crop
            return None if d is None else int(d) * s + max(r * (k - 1) + 1 - s, 0) - crop[0] - crop[1]
        (kh, kw), (sh, sw), (rh, rw) = self.kernel_size, self.strides, self.dilation_rate
        return (input_shape[0], size(input_shape[1], kh, sh, rh, self.cropping[0]),
                size(input_shape[2], kw, sw, rw, self.cropping[1]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "cropping": [list(c) for c in self.cropping], "use_bias": self.use_bias}
