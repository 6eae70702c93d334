"""Convolution (and its fork aliases), Deconvolution, InnerProduct and Pooling."""
from __future__ import annotations

import math
from dataclasses import dataclass

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.shapes._core import ShapeResult, canonical_axis, need, rule
from caffe2tf.errors import ShapeError

def _spatial(values, single_h: int, single_w: int, has_h: bool, default: int,
             n: int, what: str) -> list[int]:
    """Caffe's repeated-or-_h/_w convention for kernel/stride/pad/dilation."""
    if has_h:
        if len(values):
            raise ShapeError(f"{what} given both as {what}_h/{what}_w and as {what}")
        return [single_h, single_w] if n == 2 else [single_h] * n
    vals = list(values)
    if not vals:
        return [default] * n
    if len(vals) == 1:
        return vals * n
    if len(vals) != n:
        raise ShapeError(f"{what} has {len(vals)} values for {n} spatial axes")
    return vals


@dataclass(frozen=True)
class ConvGeometry:
    kernel: list[int]
    stride: list[int]
    pad: list[int]
    dilation: list[int]


def conv_geometry(p: caffe_pb2.ConvolutionParameter, n: int) -> ConvGeometry:
    kernel = _spatial(p.kernel_size, p.kernel_h, p.kernel_w, p.HasField("kernel_h") or p.HasField("kernel_w"), 0, n, "kernel")
    stride = _spatial(p.stride, p.stride_h, p.stride_w, p.HasField("stride_h") or p.HasField("stride_w"), 1, n, "stride")
    pad = _spatial(p.pad, p.pad_h, p.pad_w, p.HasField("pad_h") or p.HasField("pad_w"), 0, n, "pad")
    dilation = list(p.dilation) * (n if len(p.dilation) == 1 else 1) if p.dilation else [1] * n
    if len(dilation) != n:
        raise ShapeError(f"dilation has {len(p.dilation)} values for {n} spatial axes")
    for name, vals in (("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        if any(v <= 0 for v in vals):
            raise ShapeError(f"{name} must be positive, got {vals}")
    return ConvGeometry(kernel, stride, pad, dilation)


def _conv_common(param, in_shapes, deconv: bool) -> ShapeResult:
    need(in_shapes, 1, param.type)
    p = param.convolution_param
    x = in_shapes[0]
    axis = canonical_axis(p.axis, len(x))
    n = len(x) - axis - 1
    if n < 1:
        raise ShapeError(f"{param.type} needs spatial axes after the channel axis, input is {x}")
    g = conv_geometry(p, n)
    c, o, groups = x[axis], p.num_output, p.group
    if o <= 0:
        raise ShapeError("num_output must be positive")
    if groups <= 0 or c % groups or o % groups:
        raise ShapeError(f"group {groups} must divide both input channels {c} and num_output {o}")
    spatial = []
    for i in range(n):
        ext = g.dilation[i] * (g.kernel[i] - 1) + 1
        size = x[axis + 1 + i]
        if deconv:
            spatial.append(g.stride[i] * (size - 1) + ext - 2 * g.pad[i])
        else:
            spatial.append((size + 2 * g.pad[i] - ext) // g.stride[i] + 1)
    out = tuple(x[:axis]) + (o,) + tuple(spatial)
    w = (c, o // groups, *g.kernel) if deconv else (o, c // groups, *g.kernel)
    blobs = [w] + ([(o,)] if p.bias_term else [])
    return ShapeResult([out], blobs)


@rule("Convolution")
def _conv(param, in_shapes):
    return _conv_common(param, in_shapes, deconv=False)


@rule("Deconvolution")
def _deconv(param, in_shapes):
    return _conv_common(param, in_shapes, deconv=True)


@dataclass(frozen=True)
class PoolGeometry:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    out: tuple[int, int]
    ceil: bool


def pool_geometry(p: caffe_pb2.PoolingParameter, h: int, w: int) -> PoolGeometry:
    """Caffe's pooled size: ceil (default) or floor rounding, then the rule that
    the last window must start inside the padded input."""
    if p.global_pooling:
        kernel, stride, pad = (h, w), (1, 1), (0, 0)
        if p.HasField("kernel_size") or p.HasField("kernel_h"):
            raise ShapeError("global_pooling takes no kernel size")
    else:
        if p.HasField("kernel_h") != p.HasField("kernel_w"):
            raise ShapeError("kernel_h and kernel_w must be given together")
        kernel = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else (p.kernel_size, p.kernel_size)
        if not (p.HasField("kernel_h") or p.HasField("kernel_size")):
            raise ShapeError("pooling needs kernel_size (or kernel_h/kernel_w, or global_pooling)")
        stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride, p.stride)
        pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
    if min(kernel) <= 0 or min(stride) <= 0:
        raise ShapeError(f"pooling kernel {kernel} and stride {stride} must be positive")
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
        raise ShapeError(f"pooling pad {pad} must be smaller than the kernel {kernel}")
    ceil = p.round_mode == caffe_pb2.PoolingParameter.CEIL and p.ceil_mode
    out = []
    for size, k, s, pd in zip((h, w), kernel, stride, pad):
        span = size + 2 * pd - k
        o = (-(-span // s) if ceil else span // s) + 1
        if any(pad) and (o - 1) * s >= size + pd:  # Caffe: `if (pad_h_ || pad_w_)`, both axes
            o -= 1
        out.append(o)
    return PoolGeometry(kernel, stride, pad, (out[0], out[1]), ceil)


@rule("Pooling")
def _pool(param, in_shapes):
    need(in_shapes, 1, "Pooling")
    x = in_shapes[0]
    if len(x) != 4:
        raise ShapeError(f"Pooling needs a 4-D input, got {x}")
    g = pool_geometry(param.pooling_param, x[2], x[3])
    if param.pooling_param.pool == caffe_pb2.PoolingParameter.STOCHASTIC:
        raise ShapeError("STOCHASTIC pooling is a training-time layer caffe2tf does not convert")
    n_tops = max(len(param.top), 1)
    if n_tops > 2 or n_tops == 2 and param.pooling_param.pool != caffe_pb2.PoolingParameter.MAX:
        raise ShapeError(f"Pooling has {n_tops} tops; only MAX pooling has a second top (the argmax mask)")
    # top 1 (MAX only) is the mask: the flat index h*W + w of each maximum, same shape as top 0
    return ShapeResult([(x[0], x[1], *g.out)] * n_tops)


@rule("InnerProduct")
def _ip(param, in_shapes):
    need(in_shapes, 1, "InnerProduct")
    p = param.inner_product_param
    x = in_shapes[0]
    axis = canonical_axis(p.axis, len(x))
    k = math.prod(x[axis:])
    n = p.num_output
    if n <= 0:
        raise ShapeError("num_output must be positive")
    w = (k, n) if p.transpose else (n, k)
    return ShapeResult([tuple(x[:axis]) + (n,)], [w] + ([(n,)] if p.bias_term else []))


