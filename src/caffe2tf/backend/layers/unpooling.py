"""Keras layers for Caffe's MAX pooling with its argmax mask and SegNet/ENet max-unpooling.

TensorFlow's ``max_pool_with_argmax`` indexes the padded NHWC tensor (``(h*W + w)*C + c``,
batch optional) and breaks ties its own way; Caffe's mask is ``h*W + w`` within the
*unpadded* plane of one (n, c), the first maximum in row-major window order winning
(strict ``>``). These layers compute Caffe's numbers. Registered serializable under
the package ``caffe2tf``; inputs are NHWC.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from caffe2tf.backend.layers._base import serializable
_FLT_MAX = np.float32(np.finfo(np.float32).max)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


@serializable
class CaffeMaxPoolWithMask(keras.layers.Layer):
    """Caffe's MAX pooling loop with ``top[1]``, the mask: per output, start from
    ``-FLT_MAX`` and index -1, visit the window (clipped to the input) row by row and
    take a value only if it is ``>`` the best so far; the mask is the winner's
    ``h * W + w`` in the unpadded input plane, as a float.

    Args:
        pool_size, strides, pad: ``(h, w)`` pairs (symmetric pad, as Caffe).
        output_size: ``(oh, ow)`` as Caffe's rounding gave it.

    Input shape: ``(N, H, W, C)``.
    Output shape: ``[(N, oh, ow, C), (N, oh, ow, C)]``: the maxima and the mask.
    """

    def __init__(self, pool_size, strides, pad, output_size, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides = _pair(pool_size), _pair(strides)
        self.pad, self.output_size = _pair(pad), _pair(output_size)

    def build(self, input_shape):
        self._hw = (int(input_shape[1]), int(input_shape[2]))

    def call(self, x):
        (h, w), (kh, kw), (sh, sw) = self._hw, self.pool_size, self.strides
        (ph, pw), (oh, ow) = self.pad, self.output_size
        after_h = max(0, (oh - 1) * sh + kh - h - ph)
        after_w = max(0, (ow - 1) * sw + kw - w - pw)
        xp = ops.pad(x, [[0, 0], [ph, after_h], [pw, after_w], [0, 0]], constant_values=-np.inf)
        rows = np.arange(oh) * sh - ph
        cols = np.arange(ow) * sw - pw
        best = mask = None
        for i in range(kh):
            for j in range(kw):
                v = xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]
                if best is None:
                    best, mask = ops.full_like(v, -_FLT_MAX), ops.full_like(v, -1.0)
                index = ((rows[:, None] + i) * w + (cols[None, :] + j)).astype(np.float32)[None, :, :, None]
                take = ops.greater(v, best)
                best = ops.where(take, v, best)
                mask = ops.where(take, ops.convert_to_tensor(index, dtype=x.dtype), mask)
        return [best, mask]

    def compute_output_shape(self, input_shape):
        shape = (input_shape[0], *self.output_size, input_shape[3])
        return [shape, shape]

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "pad": list(self.pad), "output_size": list(self.output_size)}


@serializable
class CaffeMaxUnpool(keras.layers.Layer):
    """SegNet/ENet ``Upsample`` with a mask: a zero ``output_size`` map per (n, c), then
    ``top[n, c].flat[mask[n, c, i]] = value[n, c, i]`` for i in Caffe's order; where two
    indices coincide the later write wins. Mask values outside ``[0, oh * ow)`` are
    dropped (Caffe aborts on them).

    Args:
        output_size: ``(oh, ow)``.

    Input shape: ``[values (N, H, W, C), mask (N, H, W, C)]`` (mask as floats).
    Output shape: ``(N, oh, ow, C)``.
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = _pair(output_size)

    def call(self, inputs):
        import tensorflow as tf

        values, mask = inputs
        oh, ow = self.output_size
        h, w, c = int(values.shape[1]), int(values.shape[2]), int(values.shape[3])
        n = tf.shape(values)[0]
        plane = oh * ow
        m = tf.cast(mask, tf.int32)  # static_cast<int>: truncation
        img = tf.range(n)[:, None, None, None]
        ch = tf.range(c)[None, None, None, :]
        target = (img * plane + m) * c + ch                       # NHWC flat index in the output
        target = tf.where((m >= 0) & (m < plane), target, -1)     # negative segment ids are dropped
        # Later writes win: within one (n, c) plane Caffe writes in h*W + w order, which is the
        # order of the NHWC flat index of the source, so the largest source index wins.
        source = tf.reshape(tf.range(n * h * w * c), tf.shape(values))
        winner = tf.math.unsorted_segment_max(tf.reshape(source, [-1]), tf.reshape(target, [-1]),
                                              num_segments=n * plane * c)
        flat = tf.reshape(values, [-1])
        out = tf.where(winner >= 0, tf.gather(flat, tf.maximum(winner, 0)), tf.zeros_like(winner, values.dtype))
        return tf.reshape(out, [n, oh, ow, c])

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        return (shape[0], *self.output_size, shape[3])

    def get_config(self):
        return {**super().get_config(), "output_size": list(self.output_size)}
