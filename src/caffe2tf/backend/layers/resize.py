"""Keras layers for Caffe's Interp (PSPNet's bilinear resize with aligned corners).

Registered serializable as ``caffe2tf>ClassName``; rank-4 inputs are NHWC (see
:mod:`caffe2tf.backend.layout`). Import :mod:`caffe2tf.backend.layers` to register them all.
"""
from __future__ import annotations

import keras
from keras import ops

from caffe2tf.backend.layers._base import _pair, serializable

__all__ = ["CaffeInterp"]


@serializable
class CaffeInterp(keras.layers.Layer):
    """PSPNet/DeepLab ``Interp``: align-corners bilinear resize of an NHWC tensor,
    after cropping ``-pad_beg`` / ``-pad_end`` pixels (pads are <= 0).

    TensorFlow's ``ResizeBilinear`` with ``align_corners=True`` samples exactly
    where Caffe's ``interp.cpp`` does: source position ``out_index * (in - 1) /
    (out - 1)`` in float32, truncated to the lower pixel, the fraction as the
    weight (position 0 for a one-pixel output). Only the order of the additions
    differs (~1e-7 relative). It is also a TFLite builtin op.

    Input shape:
        4D tensor `(batch, H, W, C)`.

    Output shape:
        `(batch, output_size[0], output_size[1], C)`.
    """

    def __init__(self, output_size, pad_beg: int = 0, pad_end: int = 0, **kwargs):
        super().__init__(**kwargs)
        if pad_beg > 0 or pad_end > 0:
            raise ValueError(f"pads must be <= 0 (cropping), received pad_beg={pad_beg}, pad_end={pad_end}")
        self.output_size, self.pad_beg, self.pad_end = _pair(output_size), int(pad_beg), int(pad_end)

    def call(self, x):
        import tensorflow as tf

        if self.pad_beg or self.pad_end:
            b, e = -self.pad_beg, -self.pad_end
            x = x[:, b:x.shape[1] - e, b:x.shape[2] - e, :]
        if tuple(x.shape[1:3]) == tuple(self.output_size):
            return x
        return tf.raw_ops.ResizeBilinear(images=x, size=list(self.output_size), align_corners=True,
                                         half_pixel_centers=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "output_size": list(self.output_size),
                "pad_beg": self.pad_beg, "pad_end": self.pad_end}
