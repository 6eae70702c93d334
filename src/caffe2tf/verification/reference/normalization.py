"""Normalisation and affine layers (float64 inside, float32 out).

* ``BatchNorm`` (TEST phase, global statistics): with ``s = blob2[0]``,
  ``mean = blob0 / s``, ``var = blob1 / s`` (both 0 when ``s == 0``);
  ``y = (x - mean) / sqrt(var + eps)``, ``eps`` from ``batch_norm_param``.
  An explicit ``use_global_stats: false`` makes Caffe use the statistics of
  the batch itself (mean and biased variance over N and the spatial axes).
* ``BN`` (``node.reading``): ``"pspnet"`` (or None, for graphs read before
  readings existed): ``y = slope * (x - mean) / sqrt(var + eps) + bias``,
  ``eps`` from ``bn_param.eps``. ``"segnet"`` (SegNet/ENet fork, blobs scale,
  shift): ``bn_mode: INFERENCE`` gives ``y = scale * x + shift``; LEARN (the
  default) normalises with the batch's own statistics even in TEST:
  ``mean = E[x]``, ``var = E[x^2] - E[x]^2`` over N, H, W, then
  ``y = scale * (x - mean) / sqrt(var + 1e-9) + shift`` (eps fixed at 1e-9 in
  the fork's ``bn_layer.cpp``); optional tops 2 and 3 are that mean and
  variance, shaped (1, C, 1, 1). The statistics are computed in float64, so
  where Caffe's float32 ``E[x^2] - E[x]^2`` cancels badly (variance tiny next
  to the squared mean) this gives the exact value and Caffe an off one.
* ``Normalize`` (SSD): ``y = x / sqrt(sum x^2 + eps) * s``, the sum over C, H,
  W of each sample (``across_spatial``, the default) or over C at each pixel;
  ``s`` one shared value (``channel_shared``, the default) or one per channel.
* ``Scale``: ``y = x * s (+ b)``, where ``s`` is the blob (one bottom) or the
  second bottom, shaped ``x.shape[axis:axis+num_axes]`` and broadcast over the
  other axes; ``Bias``: ``y = x + b`` likewise.
* ``LRN`` ACROSS_CHANNELS: ``y = x * (k + alpha/n * sum_{c' in window(c)} x_c'^2)^-beta``
  with a window of ``n = local_size`` channels centred on ``c``.
  WITHIN_CHANNEL: ``y = x * (1 + alpha * avgpool_n(x^2))^-beta`` where the
  n x n average pool is zero-padded by ``(n-1)/2`` and always divides by n^2
  (``k`` is not used: Caffe builds it from a Power layer with shift 1).
* ``MVN``: per sample and channel (per sample if ``across_channels``):
  ``y = x - mean``, and ``y /= sqrt(mean(y^2)) + eps`` if ``normalize_variance``.
* ``Softmax``: ``y = exp(x - max) / sum exp(x - max)`` along ``axis``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.ir import Node
from caffe2tf.verification.reference._params import (
    canonical_axis, expect_inputs, f32, fail)
from caffe2tf.verification.reference.registry import kernel


def _per_channel(node: Node, v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(C,) vector (any stored shape) -> shape broadcasting along axis 1 of x."""
    flat = np.asarray(v, dtype=np.float64).reshape(-1)
    c = x.shape[1] if x.ndim > 1 else 1
    if flat.size != c:
        raise fail(node, f"parameter has {flat.size} values for {c} channels")
    return flat.reshape((c,) + (1,) * max(x.ndim - 2, 0))


@kernel("BatchNorm")
def batch_norm(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``BatchNorm`` with global statistics and the scale-factor blob."""
    expect_inputs(node, inputs, 1)
    if len(node.weights) < 3:
        raise fail(node, f"expects 3 blobs (mean, variance, factor), got {len(node.weights)}")
    x = np.asarray(inputs[0], dtype=np.float64)
    p = node.param.batch_norm_param
    if p.HasField("use_global_stats") and not p.use_global_stats:
        axes = (0,) + tuple(range(2, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)[0]
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)[0]
    else:
        factor = float(np.asarray(node.weights[2], dtype=np.float64).reshape(-1)[0])
        inv = 0.0 if factor == 0.0 else 1.0 / factor
        mean = _per_channel(node, node.weights[0], x) * inv
        var = _per_channel(node, node.weights[1], x) * inv
    eps = float(p.eps)
    return [f32((x - mean) / np.sqrt(var + eps))]


_SEGNET_BN_EPS = 1e-9


@kernel("BN")
def bn(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The forks' ``BN``, by ``node.reading``."""
    if node.reading in (None, "pspnet"):
        return _bn_pspnet(node, inputs)
    if node.reading == "segnet":
        return _bn_segnet(node, inputs)
    raise fail(node, f"BN reading {node.reading!r} is unknown (expected 'pspnet' or 'segnet')")


def _bn_segnet(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """SegNet/ENet ``BN``: blobs scale, shift; INFERENCE affine or LEARN batch statistics."""
    expect_inputs(node, inputs, 1)
    if len(node.weights) < 2:
        raise fail(node, f"expects 2 blobs (scale, shift), got {len(node.weights)}")
    x = np.asarray(inputs[0], dtype=np.float64)
    scale_, shift = (_per_channel(node, w, x) for w in node.weights[:2])
    p = node.param.bn_param
    n_top = len(node.outputs)
    if p.bn_mode == caffe_pb2.BNParameter.INFERENCE:
        if n_top != 1:
            raise fail(node, "bn_mode INFERENCE has one top")
        return [f32(scale_ * x + shift)]
    if not 1 <= n_top <= 3:
        raise fail(node, f"BN has 1 to 3 tops, got {n_top}")
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = (x * x).mean(axis=axes, keepdims=True) - mean * mean
    y = scale_ * (x - mean) / np.sqrt(var + _SEGNET_BN_EPS) + shift
    c = x.shape[1]
    stats = [mean.reshape(1, c, 1, 1), var.reshape(1, c, 1, 1)]
    return [f32(y)] + [f32(s) for s in stats[:n_top - 1]]


def _bn_pspnet(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """PSPNet ``BN``: blobs slope, bias, mean, variance."""
    expect_inputs(node, inputs, 1)
    if len(node.weights) < 4:
        raise fail(node, f"expects 4 blobs (slope, bias, mean, variance), got {len(node.weights)}")
    x = np.asarray(inputs[0], dtype=np.float64)
    slope, bias, mean, var = (_per_channel(node, w, x) for w in node.weights[:4])
    eps = float(node.param.bn_param.eps)
    return [f32(slope * (x - mean) / np.sqrt(var + eps) + bias)]


def _broadcast_param(node: Node, param: np.ndarray, x: np.ndarray, axis: int,
                     num_axes: int) -> np.ndarray:
    """Reshape a Scale/Bias parameter to broadcast from ``axis`` of ``x``."""
    axis = canonical_axis(node, axis, x.ndim, allow_end=True)
    p = np.asarray(param, dtype=np.float64)
    if num_axes == -1:
        dims = tuple(x.shape[axis:])
    else:
        if axis + num_axes > x.ndim:
            raise fail(node, f"axis {axis} + num_axes {num_axes} exceeds {x.ndim} axes")
        dims = tuple(x.shape[axis:axis + num_axes])
    if p.size != int(np.prod(dims, dtype=np.int64)):
        raise fail(node, f"parameter shape {p.shape} does not fit {dims} at axis {axis}")
    return p.reshape(dims + (1,) * (x.ndim - axis - len(dims)))


def _param_from_bottom(node: Node, x: np.ndarray, p: np.ndarray, axis: int) -> np.ndarray:
    """Two-bottom Scale/Bias: the second bottom's shape must match x at ``axis``."""
    axis = canonical_axis(node, axis, x.ndim, allow_end=True)
    if tuple(x.shape[axis:axis + p.ndim]) != tuple(p.shape):
        raise fail(node, f"second bottom {p.shape} does not match {x.shape} at axis {axis}")
    return np.asarray(p, dtype=np.float64).reshape(
        tuple(p.shape) + (1,) * (x.ndim - axis - p.ndim))


@kernel("Scale")
def scale(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``Scale``: ``y = x * s (+ b)`` broadcast from ``axis``."""
    expect_inputs(node, inputs, (1, 2))
    p = node.param.scale_param
    x = np.asarray(inputs[0], dtype=np.float64)
    weights = list(node.weights)
    if len(inputs) == 2:
        s = _param_from_bottom(node, x, inputs[1], p.axis)
        bias_index = 0
    else:
        if not weights:
            raise fail(node, "Scale with one bottom needs its scale blob")
        s = _broadcast_param(node, weights[0], x, p.axis, p.num_axes)
        bias_index = 1
    y = x * s
    if p.bias_term:
        if len(weights) <= bias_index:
            raise fail(node, "bias_term is set but the bias blob is missing")
        b = weights[bias_index]
        y = y + np.asarray(b, dtype=np.float64).reshape(s.shape)
    return [f32(y)]


@kernel("Bias")
def bias(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``Bias``: ``y = x + b`` broadcast from ``axis``."""
    expect_inputs(node, inputs, (1, 2))
    p = node.param.bias_param
    x = np.asarray(inputs[0], dtype=np.float64)
    if len(inputs) == 2:
        b = _param_from_bottom(node, x, inputs[1], p.axis)
    else:
        if not node.weights:
            raise fail(node, "Bias with one bottom needs its bias blob")
        b = _broadcast_param(node, node.weights[0], x, p.axis, p.num_axes)
    return [f32(x + b)]


def _window_sum(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Sum over a centred window of ``size`` along ``axis``, zero-padded."""
    pre = (size - 1) // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (pre, size - 1 - pre)
    ap = np.pad(a, pad)
    csum = np.cumsum(ap, axis=axis)
    zero = np.zeros_like(np.take(csum, [0], axis=axis))
    csum = np.concatenate([zero, csum], axis=axis)
    n = a.shape[axis]
    hi = np.take(csum, np.arange(size, size + n), axis=axis)
    lo = np.take(csum, np.arange(0, n), axis=axis)
    return hi - lo


@kernel("Normalize")
def normalize(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """SSD ``Normalize``: L2 norm (eps inside the root) times a learned scale."""
    expect_inputs(node, inputs, 1)
    x = np.asarray(inputs[0], dtype=np.float64)
    if x.ndim < 2:
        raise fail(node, f"expects a bottom of 2 or more axes, got shape {x.shape}")
    p = node.param.norm_param
    if not node.weights:
        raise fail(node, "Normalize needs its scale blob")
    s = np.asarray(node.weights[0], dtype=np.float64).reshape(-1)
    c = x.shape[1]
    if p.channel_shared:
        if s.size != 1:
            raise fail(node, f"channel_shared scale has {s.size} values, expected 1")
        s = s.reshape(())
    else:
        if s.size != c:
            raise fail(node, f"scale has {s.size} values for {c} channels")
        s = s.reshape((c,) + (1,) * (x.ndim - 2))
    axes = tuple(range(1, x.ndim)) if p.across_spatial else (1,)
    norm = np.sqrt((x * x).sum(axis=axes, keepdims=True) + float(np.float32(p.eps)))
    return [f32(x / norm * s)]


@kernel("LRN")
def lrn(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``LRN`` across or within channels."""
    expect_inputs(node, inputs, 1, ndim=4)
    p = node.param.lrn_param
    size = int(p.local_size)
    if size % 2 != 1:
        raise fail(node, f"local_size must be odd, got {size}")
    x = np.asarray(inputs[0], dtype=np.float64)
    alpha, beta = float(p.alpha), float(p.beta)
    sq = x * x
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        scale_ = float(p.k) + alpha / size * _window_sum(sq, size, axis=1)
    else:
        avg = _window_sum(_window_sum(sq, size, axis=2), size, axis=3) / (size * size)
        scale_ = 1.0 + alpha * avg
    return [f32(x * np.power(scale_, -beta))]


@kernel("MVN")
def mvn(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``MVN``: subtract the mean, optionally divide by (std + eps)."""
    expect_inputs(node, inputs, 1)
    p = node.param.mvn_param
    x = np.asarray(inputs[0], dtype=np.float64)
    first = 1 if p.across_channels else 2
    axes = tuple(range(first, x.ndim))
    y = x - x.mean(axis=axes, keepdims=True)
    if p.normalize_variance:
        std = np.sqrt((y * y).mean(axis=axes, keepdims=True))
        y = y / (std + float(p.eps))
    return [f32(y)]


@kernel("Softmax")
def softmax(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``Softmax`` along ``softmax_param.axis`` (default 1)."""
    expect_inputs(node, inputs, 1)
    x = np.asarray(inputs[0], dtype=np.float64)
    axis = canonical_axis(node, node.param.softmax_param.axis, x.ndim)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [f32(e / e.sum(axis=axis, keepdims=True))]
