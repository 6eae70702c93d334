"""BatchNorm, BN (PSPNet's and SegNet/ENet's, by ``Node.reading``), Scale, Bias, LRN and MVN."""
from __future__ import annotations

import numpy as np

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.shapes import canonical_axis
from caffe2tf.errors import ConversionError
from caffe2tf.backend import layout
from caffe2tf.backend.context import weights_of
from caffe2tf.backend.layers import CaffeAffine, CaffeBroadcastOp, CaffeLRN, CaffeMeanVarianceNorm
from caffe2tf.backend.registry import translator
from caffe2tf.backend.layers.segnet import CaffeBatchStatBN

f32 = np.float32


def affine(x, x_shape, axis: int, name: str, *, mean=None, scale=None, bias=None):
    """A :class:`CaffeAffine` ``(x - mean) * scale + bias`` whose parameters (Caffe
    shape ``x_shape[axis : axis + ndim]``) broadcast against the Keras tensor."""
    given = {k: a for k, a in (("mean", mean), ("scale", scale), ("bias", bias)) if a is not None}
    param_shape = layout.param_broadcast_shape(x_shape, axis, next(iter(given.values())).ndim)
    layer = CaffeAffine(param_shape, use_mean=mean is not None, use_scale=scale is not None,
                        use_bias=bias is not None, name=name)
    y = layer(x)
    layer.set_parameters(**{k: layout.param_to_keras_broadcast(a.astype(f32), x_shape, axis)
                            for k, a in given.items()})
    return y


def batchnorm_statistics(mean: np.ndarray, var: np.ndarray, factor: np.ndarray, eps: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Caffe BatchNorm's stored statistics -> ``(mean, 1/sqrt(var + eps))``: the blobs are
    sums scaled by ``factor`` (mean = blob0 / s, var = blob1 / s; 0 when s == 0)."""
    s = f32(factor.reshape(-1)[0])
    inv_s = f32(0) if s == 0 else f32(1) / s
    m = (mean.astype(f32) * inv_s).astype(f32)
    v = (var.astype(f32) * inv_s).astype(f32)
    return m, (f32(1) / np.sqrt(v + f32(eps))).astype(f32)


@translator("BatchNorm")
def batch_norm(node, inputs, ctx):
    """Stored statistics (TEST default): ``(x - mean) / sqrt(var + eps)`` with the
    scale-factor blob applied; ``use_global_stats: false``: the batch's own statistics."""
    p = node.param.batch_norm_param
    x_shape = ctx.in_shapes(node)[0]
    use_global = p.use_global_stats if p.HasField("use_global_stats") else True
    if not use_global:
        rank = len(x_shape)
        axes = [layout.to_keras_axis(a, rank) for a in range(rank) if a != 1]
        return [CaffeMeanVarianceNorm(axes, eps=p.eps, eps_inside_sqrt=True, name=ctx.layer_name(node))(inputs[0])]
    mean, var, factor = weights_of(node, 3)
    m, inv_std = batchnorm_statistics(mean, var, factor, p.eps)
    return [affine(inputs[0], x_shape, 1, ctx.layer_name(node), mean=m, scale=inv_std)]


#: The SegNet/ENet fork's fixed variance epsilon (``var_eps_ = 1e-9`` in bn_layer.cpp).
SEGNET_BN_EPS = 1e-9


def segnet_bn_is_affine(param) -> bool:
    """Whether a SegNet/ENet BN is the pure affine ``scale * x + shift`` (``bn_mode: INFERENCE``);
    the default LEARN mode uses batch statistics, in the TEST phase too."""
    return param.bn_param.bn_mode == caffe_pb2.BNParameter.INFERENCE


@translator("BN")
def bn(node, inputs, ctx):
    """Reading ``pspnet`` (or none): PSPNet's BN, blobs [slope, bias, mean, variance],
    ``(x - mean) * (slope / sqrt(variance + eps)) + bias``, eps from ``bn_param``.
    Reading ``segnet``: blobs [scale, shift]; ``bn_mode: INFERENCE`` is ``scale * x + shift``,
    LEARN (the default) :class:`CaffeBatchStatBN` (batch statistics, eps 1e-9)."""
    if node.reading == "segnet":
        scale, shift = (w.astype(f32).reshape(-1) for w in weights_of(node, 2))
        x_shape = ctx.in_shapes(node)[0]
        if segnet_bn_is_affine(node.param):
            return [affine(inputs[0], x_shape, 1, ctx.layer_name(node), scale=scale, bias=shift)]
        if len(x_shape) != 4:
            raise ConversionError(f"SegNet/ENet BN in LEARN mode needs a 4-D input, got {x_shape}",
                                  layer=node.name, line=node.line)
        layer = CaffeBatchStatBN(x_shape[1], SEGNET_BN_EPS, name=ctx.layer_name(node))
        y = layer(inputs[0])
        layer.set_weights([scale, shift])
        return [y]
    if node.reading not in (None, "pspnet"):
        raise ConversionError(f"BN reading {node.reading!r} is neither 'pspnet' nor 'segnet'",
                              layer=node.name, line=node.line)
    slope, bias, mean, var = (w.astype(f32) for w in weights_of(node, 4))
    eps = f32(node.param.bn_param.eps)
    scale = (slope / np.sqrt(var + eps)).astype(f32)
    return [affine(inputs[0], ctx.in_shapes(node)[0], 1, ctx.layer_name(node), mean=mean, scale=scale, bias=bias)]


def _broadcast(op: str, x, p, x_shape, p_shape, axis: int, name: str):
    """``x * p`` / ``x + p`` where ``p`` is a tensor spanning Caffe axes ``[axis, axis + p.ndim)``."""
    rank = len(x_shape)
    full = [1] * rank
    full[axis:axis + len(p_shape)] = p_shape
    if axis == 0 and p_shape:
        full[0] = -1  # p carries the batch axis
    in_perm = list(layout.NHWC_TO_NCHW) if len(p_shape) == 4 else None
    out_perm = list(layout.NCHW_TO_NHWC) if rank == 4 else None
    return CaffeBroadcastOp(op, full, in_perm, out_perm, name=name)([x, p])


def _axis_of(param, x_shape, p_shape) -> int:
    return canonical_axis(param.axis, len(x_shape)) if p_shape else 0


@translator("Scale")
def scale(node, inputs, ctx):
    """``x * scale (+ bias)``; the scale is a blob spanning ``axis..axis+num_axes``,
    or the second bottom."""
    p = node.param.scale_param
    x_shape = ctx.in_shapes(node)[0]
    if len(inputs) == 2:
        s_shape = ctx.in_shapes(node)[1]
        axis = _axis_of(p, x_shape, s_shape)
        y = _broadcast("mul", inputs[0], inputs[1], x_shape, s_shape, axis, ctx.layer_name(node))
        if p.bias_term:
            (b,) = weights_of(node, 1)
            y = affine(y, x_shape, axis, ctx.layer_name(node, "_bias"), bias=b)
        return [y]
    blobs = weights_of(node, 2 if p.bias_term else 1)
    axis = canonical_axis(p.axis, len(x_shape))
    return [affine(inputs[0], x_shape, axis, ctx.layer_name(node), scale=blobs[0],
                   bias=blobs[1] if p.bias_term else None)]


@translator("Bias")
def bias(node, inputs, ctx):
    """``x + bias``; the bias is a blob spanning ``axis..axis+num_axes``, or the second bottom."""
    p = node.param.bias_param
    x_shape = ctx.in_shapes(node)[0]
    if len(inputs) == 2:
        b_shape = ctx.in_shapes(node)[1]
        return [_broadcast("add", inputs[0], inputs[1], x_shape, b_shape, _axis_of(p, x_shape, b_shape),
                           ctx.layer_name(node))]
    (b,) = weights_of(node, 1)
    return [affine(inputs[0], x_shape, canonical_axis(p.axis, len(x_shape)), ctx.layer_name(node), bias=b)]


@translator("LRN")
def lrn(node, inputs, ctx):
    """:class:`CaffeLRN` (ACROSS_CHANNELS with ``k``, or WITHIN_CHANNEL)."""
    p = node.param.lrn_param
    if len(ctx.in_shapes(node)[0]) != 4:
        raise ConversionError("LRN needs a 4-D input", layer=node.name, line=node.line)
    region = "across_channels" if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS else "within_channel"
    layer = CaffeLRN(p.local_size, p.alpha, p.beta, p.k, region, name=ctx.layer_name(node))
    return [layer(inputs[0])]


@translator("MVN")
def mvn(node, inputs, ctx):
    """:class:`CaffeMeanVarianceNorm` over H, W (and C with ``across_channels``);
    ``(x - mean) / (std + eps)``."""
    p = node.param.mvn_param
    x_shape = ctx.in_shapes(node)[0]
    rank = len(x_shape)
    first = 1 if p.across_channels else 2
    if rank <= first:
        raise ConversionError(f"MVN of a {rank}-D input normalises single elements", layer=node.name)
    axes = sorted(layout.to_keras_axis(a, rank) for a in range(first, rank))
    return [CaffeMeanVarianceNorm(axes, p.normalize_variance, p.eps, name=ctx.layer_name(node))(inputs[0])]
