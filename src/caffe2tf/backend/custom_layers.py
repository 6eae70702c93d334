"""Keras layers for the Caffe semantics that no standard Keras layer computes exactly.

Every layer here implements ``get_config`` and is registered serializable under
the package ``caffe2tf``: importing this module is all ``keras.models.load_model``
needs to restore a converted model (it also imports the families' own layer modules,
listed in :data:`LAYER_MODULES`, at its end). Layers hold only hyper-parameters in their
config; numbers (weights, statistics) are Keras weights, set by the translators
with ``set_weights``. Inputs of rank 4 are NHWC (see ``layout.py``).
"""
from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import ops

from caffe2tf.backend import caffe_math

serializable = keras.saving.register_keras_serializable(package="caffe2tf")


def _pair(v: Sequence[int] | int) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


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


@serializable
class CaffeInterp(keras.layers.Layer):
    """PSPNet/DeepLab ``Interp``: align-corners bilinear resize of an NHWC tensor,
    after cropping ``-pad_beg`` / ``-pad_end`` pixels (pads are <= 0).

    TensorFlow's ``ResizeBilinear`` with ``align_corners=True`` samples exactly
    where Caffe's ``interp.cpp`` does: source position ``out_index * (in - 1) /
    (out - 1)`` in float32, truncated to the lower pixel, the fraction as the
    weight (position 0 for a one-pixel output). Only the order of the additions
    differs (~1e-7 relative). It is also a TFLite builtin op."""

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


@serializable
class CaffeLRN(keras.layers.Layer):
    """Caffe's LRN of an NHWC tensor.

    ACROSS_CHANNELS: ``x * (k + alpha/n * sum of x^2 over n channels)^-beta``;
    WITHIN_CHANNEL: ``x * (1 + alpha * mean of x^2 over an n x n window, zero
    padded, divisor n^2)^-beta`` (``k`` unused, as in Caffe). ``n`` is odd.
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
    (``eps_inside_sqrt=True``: ``std = sqrt(var + eps)``)."""

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
    optional; the translator sets them with :meth:`set_parameters`."""

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


@serializable
class CaffeElementwise(keras.layers.Layer):
    """Caffe's element-wise maps, computed as Caffe does:

    ``abs``; ``bnll`` (softplus); ``power`` ``(shift + scale*x)^power``;
    ``exp`` ``outer * exp(inner * x)``; ``log`` ``log(scale*x + shift) * base_scale``;
    ``threshold`` ``x > t``; ``clip`` ``min(max(x, lo), hi)``; ``swish`` ``x * sigmoid(beta*x)``.
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
    """Eltwise SUM with coefficients: ``coeffs[0]*x0 + coeffs[1]*x1 + ...`` in Caffe's order."""

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
class CaffeSlice(keras.layers.Layer):
    """``x[begin:end]`` on every axis (batch included; ``None`` keeps an axis whole):
    Slice tops and Crop."""

    def __init__(self, begin: Sequence[int | None], end: Sequence[int | None], **kwargs):
        super().__init__(**kwargs)
        if len(begin) != len(end):
            raise ValueError(f"begin and end differ in length, received begin={begin}, end={end}")
        self.begin = [None if b is None else int(b) for b in begin]
        self.end = [None if e is None else int(e) for e in end]

    def call(self, x):
        return x[tuple(slice(b, e) for b, e in zip(self.begin, self.end))]

    def get_config(self):
        return {**super().get_config(), "begin": self.begin, "end": self.end}


@serializable
class CaffeReshape(keras.layers.Layer):
    """Reshape including the batch axis (``-1`` infers one axis), for Caffe
    Reshape/Flatten that change the batch axis."""

    def __init__(self, target_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.target_shape = [int(d) for d in target_shape]

    def call(self, x):
        return ops.reshape(x, self.target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


@serializable
class CaffeArgMax(keras.layers.Layer):
    """Caffe's ArgMax; ties go to the larger index (Caffe sorts (value, index)
    pairs descending). Indices are returned as floats, like Caffe.

    With ``axis`` (a Keras axis) the top-k runs along it. Without, each sample is
    flattened in Caffe order (``in_perm`` first brings it there) and the output
    is Caffe's ``(N, 1 or 2, top_k, ...)`` reshaped to ``out_shape`` (batch -1)
    then permuted by ``out_perm`` into Keras layout.
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

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "out_max_val": self.out_max_val, "axis": self.axis,
                "in_perm": self.in_perm, "out_shape": self.out_shape, "out_perm": self.out_perm}


@serializable
class CaffeReduction(keras.layers.Layer):
    """Caffe's Reduction over ``axes`` (Keras axes): ``coeff * SUM | ASUM | SUMSQ | MEAN``,
    the result permuted by ``out_perm`` into Caffe's remaining-axis order."""

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

    def get_config(self):
        return {**super().get_config(), "op": self.op, "axes": self.axes, "coeff": self.coeff,
                "out_perm": self.out_perm}


@serializable
class CaffeGroupedDeconv2D(keras.layers.Layer):
    """Caffe's Deconvolution with ``groups > 1`` (TensorFlow has no grouped
    transposed convolution): one ``conv_transpose`` per group, then Caffe's
    crop of ``pad`` pixels per side (``cropping = ((top, bottom), (left, right))``).
    Kernel ``(kh, kw, filters/groups, in_channels)`` as from
    ``layout.deconv_kernel_to_keras``."""

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

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "cropping": [list(c) for c in self.cropping], "use_bias": self.use_bias}


@serializable
class CaffeBroadcastOp(keras.layers.Layer):
    """Scale/Bias with a second bottom: ``x * p`` or ``x + p`` where ``p`` spans some
    of ``x``'s Caffe axes. ``p`` is brought to Caffe order (``in_perm``), reshaped to
    ``caffe_shape`` (1 outside its span, -1 for a batch axis) and permuted into
    ``x``'s Keras layout (``out_perm``)."""

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


#: The other families' custom-layer modules; imported here so that importing this module
#: registers every caffe2tf layer for ``keras.models.load_model``.
LAYER_MODULES = ("caffe2tf.backend.ssd_layers", "caffe2tf.backend.unpooling_layers",
                 "caffe2tf.backend.segnet_layers")

for _module in LAYER_MODULES:
    __import__(_module)
