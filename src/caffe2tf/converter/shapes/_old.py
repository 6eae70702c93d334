"""Shape inference in Caffe's own semantics.

One rule per layer type: ``rule(param, in_shapes) -> ShapeResult`` where
``param`` is the layer's ``LayerParameter`` and ``in_shapes`` its bottoms' NCHW
shapes. A rule returns the tops' shapes and the *canonical* shapes of the
layer's blobs, which the reader uses to check (and, for harmless differences in
leading/trailing 1s, reshape) what the caffemodel holds:

======================  ==========================================
Convolution             W (O, C/g, kh, kw), b (O,)
Deconvolution           W (C, O/g, kh, kw), b (O,)
InnerProduct            W (N, K) — (K, N) with ``transpose`` — b (N,)
BatchNorm               mean (C,), variance (C,), scale factor (1,)
BN (PSPNet)             slope, bias, mean, variance: each (C,)
Scale / Bias            bottom.shape[axis : axis + num_axes]
PReLU                   (C,), or (1,) when channel_shared
======================  ==========================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.errors import ShapeError

Shape = tuple[int, ...]
MAX_ELEMENTS = 2**31 - 1


@dataclass(frozen=True)
class ShapeResult:
    outputs: list[Shape]
    blobs: list[Shape] = field(default_factory=list)


Rule = Callable[[caffe_pb2.LayerParameter, list[Shape]], ShapeResult]
_RULES: dict[str, Rule] = {}


def rule(*types: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for t in types:
            if t in _RULES:
                raise ValueError(f"duplicate shape rule for {t}")
            _RULES[t] = fn
        return fn
    return register


def has_rule(layer_type: str) -> bool:
    return layer_type in _RULES


def infer(param: caffe_pb2.LayerParameter, in_shapes: list[Shape]) -> ShapeResult:
    """Shapes of the tops and blobs of one layer; raises ShapeError on bad parameters."""
    result = _RULES[param.type](param, in_shapes)
    for s in result.outputs:
        if any(d <= 0 for d in s):
            raise ShapeError(f"{param.type} gives an empty output shape {s} from inputs {in_shapes}")
        if math.prod(s) > MAX_ELEMENTS:
            raise ShapeError(f"output shape {s} has more than {MAX_ELEMENTS} elements")
    return result


def canonical_axis(axis: int, rank: int, what: str = "axis") -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise ShapeError(f"{what} {axis} is out of range for a {rank}-D input")
    return a


def _need(in_shapes: list[Shape], n: int | tuple[int, ...], ltype: str) -> None:
    ok = (len(in_shapes) in n) if isinstance(n, tuple) else len(in_shapes) == n
    if not ok:
        raise ShapeError(f"{ltype} takes {n} bottom(s), got {len(in_shapes)}")


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
    _need(in_shapes, 1, param.type)
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
    _need(in_shapes, 1, "Pooling")
    x = in_shapes[0]
    if len(x) != 4:
        raise ShapeError(f"Pooling needs a 4-D input, got {x}")
    g = pool_geometry(param.pooling_param, x[2], x[3])
    if param.pooling_param.pool == caffe_pb2.PoolingParameter.STOCHASTIC:
        raise ShapeError("STOCHASTIC pooling is a training-time layer caffe2tf does not convert")
    return ShapeResult([(x[0], x[1], *g.out)] * max(len(param.top), 1))


@rule("InnerProduct")
def _ip(param, in_shapes):
    _need(in_shapes, 1, "InnerProduct")
    p = param.inner_product_param
    x = in_shapes[0]
    axis = canonical_axis(p.axis, len(x))
    k = math.prod(x[axis:])
    n = p.num_output
    if n <= 0:
        raise ShapeError("num_output must be positive")
    w = (k, n) if p.transpose else (n, k)
    return ShapeResult([tuple(x[:axis]) + (n,)], [w] + ([(n,)] if p.bias_term else []))


def _same(n_blobs: Callable[[caffe_pb2.LayerParameter, Shape], list[Shape]] | None = None) -> Rule:
    def fn(param, in_shapes):
        if not in_shapes:
            raise ShapeError(f"{param.type} needs a bottom")
        x = in_shapes[0]
        if n_blobs and len(x) < 2:
            raise ShapeError(f"{param.type} needs a channel axis, input is {x}")
        return ShapeResult([x] * max(len(param.top), 1), n_blobs(param, x) if n_blobs else [])
    return fn


for _t in ("ReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log",
           "Threshold", "Dropout", "LRN", "MVN", "Softmax", "Clip", "Swish", "ReLU6"):
    _RULES[_t] = _same()
_RULES["PReLU"] = _same(lambda p, x: [(1,) if p.prelu_param.channel_shared else (x[1],)])
_RULES["BatchNorm"] = _same(lambda p, x: [(x[1],), (x[1],), (1,)])
_RULES["BN"] = _same(lambda p, x: [(x[1],)] * 4)
_RULES["Normalize"] = _same(lambda p, x: [(1,) if p.norm_param.channel_shared else (x[1],)])


@rule("Split")
def _split(param, in_shapes):
    _need(in_shapes, 1, "Split")
    return ShapeResult([in_shapes[0]] * len(param.top))


def _axes_slice(x: Shape, axis: int, num_axes: int, what: str) -> tuple[int, int]:
    a = canonical_axis(axis, len(x), f"{what} axis")
    end = len(x) if num_axes == -1 else a + num_axes
    if num_axes < -1 or end > len(x):
        raise ShapeError(f"{what} num_axes {num_axes} does not fit input {x} at axis {axis}")
    return a, end


@rule("Scale")
def _scale(param, in_shapes):
    _need(in_shapes, (1, 2), "Scale")
    p = param.scale_param
    x = in_shapes[0]
    if len(in_shapes) == 2:
        s = in_shapes[1]
        a = canonical_axis(p.axis, len(x), "Scale axis") if s else 0
        if tuple(x[a:a + len(s)]) != tuple(s):
            raise ShapeError(f"scale bottom {s} does not match input {x} at axis {p.axis}")
        return ShapeResult([x], [tuple(s)] if p.bias_term else [])
    a, end = _axes_slice(x, p.axis, p.num_axes, "Scale")
    s = tuple(x[a:end])
    return ShapeResult([x], [s] + ([s] if p.bias_term else []))


@rule("Bias")
def _bias(param, in_shapes):
    _need(in_shapes, (1, 2), "Bias")
    p = param.bias_param
    x = in_shapes[0]
    if len(in_shapes) == 2:
        b = in_shapes[1]
        a = canonical_axis(p.axis, len(x), "Bias axis") if b else 0
        if tuple(x[a:a + len(b)]) != tuple(b):
            raise ShapeError(f"bias bottom {b} does not match input {x} at axis {p.axis}")
        return ShapeResult([x])
    a, end = _axes_slice(x, p.axis, p.num_axes, "Bias")
    return ShapeResult([x], [tuple(x[a:end])])


@rule("Eltwise")
def _eltwise(param, in_shapes):
    if len(in_shapes) < 2:
        raise ShapeError("Eltwise needs at least two bottoms")
    if any(s != in_shapes[0] for s in in_shapes):
        raise ShapeError(f"Eltwise bottoms differ in shape: {in_shapes}")
    p = param.eltwise_param
    if p.coeff and (len(p.coeff) != len(in_shapes) or p.operation != caffe_pb2.EltwiseParameter.SUM):
        raise ShapeError("Eltwise coeff needs operation SUM and one coefficient per bottom")
    return ShapeResult([in_shapes[0]])


@rule("Concat")
def _concat(param, in_shapes):
    if not in_shapes:
        raise ShapeError("Concat needs bottoms")
    p = param.concat_param
    x = in_shapes[0]
    axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    a = canonical_axis(axis, len(x), "Concat axis")
    for s in in_shapes[1:]:
        if len(s) != len(x) or any(s[i] != x[i] for i in range(len(x)) if i != a):
            raise ShapeError(f"Concat bottoms {in_shapes} differ outside axis {a}")
    out = list(x)
    out[a] = sum(s[a] for s in in_shapes)
    return ShapeResult([tuple(out)])


@rule("Slice")
def _slice(param, in_shapes):
    _need(in_shapes, 1, "Slice")
    p = param.slice_param
    x = in_shapes[0]
    a = canonical_axis(p.slice_dim if p.HasField("slice_dim") else p.axis, len(x), "Slice axis")
    n_top = len(param.top)
    if n_top < 1:
        raise ShapeError("Slice needs at least one top")
    points = list(p.slice_point)
    if points:
        if len(points) != n_top - 1 or points != sorted(points) or points[0] <= 0 or points[-1] >= x[a]:
            raise ShapeError(f"slice_point {points} does not split axis {a} of size {x[a]} into {n_top} parts")
        bounds = [0] + points + [x[a]]
    else:
        if x[a] % n_top:
            raise ShapeError(f"axis {a} of size {x[a]} does not split evenly into {n_top} tops")
        bounds = [i * x[a] // n_top for i in range(n_top + 1)]
    outs = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        s = list(x)
        s[a] = hi - lo
        outs.append(tuple(s))
    return ShapeResult(outs)


@rule("Flatten")
def _flatten(param, in_shapes):
    _need(in_shapes, 1, "Flatten")
    x = in_shapes[0]
    a = canonical_axis(param.flatten_param.axis, len(x), "Flatten axis")
    e = canonical_axis(param.flatten_param.end_axis, len(x), "Flatten end_axis")
    return ShapeResult([tuple(x[:a]) + (math.prod(x[a:e + 1]),) + tuple(x[e + 1:])])


@rule("Reshape")
def _reshape(param, in_shapes):
    _need(in_shapes, 1, "Reshape")
    p = param.reshape_param
    x = in_shapes[0]
    start = canonical_axis(p.axis, len(x) + 1, "Reshape axis") if p.axis >= 0 else len(x) + 1 + p.axis
    end = len(x) if p.num_axes == -1 else start + p.num_axes
    if not 0 <= start <= end <= len(x):
        raise ShapeError(f"Reshape axis {p.axis}/num_axes {p.num_axes} do not fit input {x}")
    dims = list(p.shape.dim)
    new: list[int] = []
    infer_at = None
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= len(x):
                raise ShapeError(f"Reshape dim 0 at position {i} copies a non-existent axis of {x}")
            new.append(x[start + i])
        elif d == -1:
            if infer_at is not None:
                raise ShapeError("Reshape has more than one -1")
            infer_at = len(new)
            new.append(1)
        elif d < -1:
            raise ShapeError(f"Reshape dim {d} is invalid")
        else:
            new.append(d)
    out = list(x[:start]) + new + list(x[end:])
    total, known = math.prod(x), math.prod(out)
    if infer_at is not None:
        if known == 0 or total % known:
            raise ShapeError(f"Reshape cannot infer -1: {x} into {out}")
        out[start + infer_at] = total // known
    if math.prod(out) != total:
        raise ShapeError(f"Reshape {x} ({total} elements) into {tuple(out)} changes the element count")
    return ShapeResult([tuple(out)])


@rule("Crop")
def _crop(param, in_shapes):
    _need(in_shapes, 2, "Crop")
    x, ref = in_shapes
    if len(ref) != len(x):
        raise ShapeError(f"Crop input {x} and reference {ref} differ in rank")
    p = param.crop_param
    a = canonical_axis(p.axis, len(x), "Crop axis")
    n = len(x) - a
    offs = list(p.offset)
    if len(offs) not in (0, 1, n):
        raise ShapeError(f"Crop has {len(offs)} offsets for {n} cropped axes")
    offs = offs * n if len(offs) == 1 else (offs or [0] * n)
    out = list(x)
    for i in range(n):
        if ref[a + i] + offs[i] > x[a + i]:
            raise ShapeError(f"Crop of axis {a + i}: offset {offs[i]} + size {ref[a + i]} exceeds {x[a + i]}")
        out[a + i] = ref[a + i]
    return ShapeResult([tuple(out)])


def interp_size(p: caffe_pb2.InterpParameter, h: int, w: int) -> tuple[int, int]:
    """PSPNet/DeepLab Interp output size (pad_beg/pad_end <= 0 crop the input first)."""
    if p.pad_beg > 0 or p.pad_end > 0:
        raise ShapeError("Interp supports only pad_beg/pad_end <= 0")
    he, we = h + p.pad_beg + p.pad_end, w + p.pad_beg + p.pad_end
    if he <= 0 or we <= 0:
        raise ShapeError(f"Interp pads leave an empty input ({he}x{we})")
    zoom, shrink = p.HasField("zoom_factor"), p.HasField("shrink_factor")
    if zoom and p.zoom_factor < 1 or shrink and p.shrink_factor < 1:
        raise ShapeError("Interp zoom_factor and shrink_factor must be >= 1")
    if shrink and not zoom:
        return (he - 1) // p.shrink_factor + 1, (we - 1) // p.shrink_factor + 1
    if zoom and not shrink:
        return he + (he - 1) * (p.zoom_factor - 1), we + (we - 1) * (p.zoom_factor - 1)
    if p.HasField("height") and p.HasField("width"):
        return p.height, p.width
    if zoom and shrink:
        ho, wo = (he - 1) // p.shrink_factor + 1, (we - 1) // p.shrink_factor + 1
        return ho + (ho - 1) * (p.zoom_factor - 1), wo + (wo - 1) * (p.zoom_factor - 1)
    raise ShapeError("Interp needs zoom_factor, shrink_factor, or height and width")


@rule("Interp")
def _interp(param, in_shapes):
    _need(in_shapes, (1, 2), "Interp")
    x = in_shapes[0]
    if len(x) != 4:
        raise ShapeError(f"Interp needs a 4-D input, got {x}")
    if len(in_shapes) == 2:
        if len(in_shapes[1]) != 4:
            raise ShapeError(f"Interp's size bottom must be 4-D, got {in_shapes[1]}")
        return ShapeResult([(x[0], x[1], in_shapes[1][2], in_shapes[1][3])])
    h, w = interp_size(param.interp_param, x[2], x[3])
    return ShapeResult([(x[0], x[1], h, w)])


@rule("ArgMax")
def _argmax(param, in_shapes):
    _need(in_shapes, 1, "ArgMax")
    p = param.argmax_param
    x = in_shapes[0]
    if p.HasField("axis"):
        a = canonical_axis(p.axis, len(x), "ArgMax axis")
        if p.top_k > x[a]:
            raise ShapeError(f"ArgMax top_k {p.top_k} exceeds axis size {x[a]}")
        out = list(x)
        out[a] = p.top_k
        return ShapeResult([tuple(out)])
    out = [1] * max(len(x), 3)
    out[0] = x[0]
    out[2] = p.top_k
    if p.out_max_val:
        out[1] = 2
    return ShapeResult([tuple(out)])


@rule("Reduction")
def _reduction(param, in_shapes):
    _need(in_shapes, 1, "Reduction")
    x = in_shapes[0]
    a = canonical_axis(param.reduction_param.axis, len(x), "Reduction axis")
    return ShapeResult([tuple(x[:a])])


@rule("Tile")
def _tile(param, in_shapes):
    _need(in_shapes, 1, "Tile")
    x = list(in_shapes[0])
    a = canonical_axis(param.tile_param.axis, len(x), "Tile axis")
    if param.tile_param.tiles <= 0:
        raise ShapeError("Tile tiles must be positive")
    x[a] *= param.tile_param.tiles
    return ShapeResult([tuple(x)])


@rule("Silence")
def _silence(param, in_shapes):
    return ShapeResult([])


@rule("Permute")
def _permute(param, in_shapes):
    _need(in_shapes, 1, "Permute")
    x = in_shapes[0]
    order = list(param.permute_param.order)
    for i in range(len(x)):
        if i not in order:
            order.append(i)
    if sorted(order) != list(range(len(x))):
        raise ShapeError(f"Permute order {list(param.permute_param.order)} is not a permutation of {len(x)} axes")
    return ShapeResult([tuple(x[i] for i in order)])


@rule("Upsample")
def _upsample(param, in_shapes):
    _need(in_shapes, (1, 2), "Upsample")
    x = in_shapes[0]
    if len(x) != 4:
        raise ShapeError(f"Upsample needs a 4-D input, got {x}")
    p = param.upsample_param
    if p.HasField("upsample_h"):
        return ShapeResult([(x[0], x[1], p.upsample_h, p.upsample_w)])
    sh = p.scale_h if p.HasField("scale_h") else p.scale
    sw = p.scale_w if p.HasField("scale_w") else p.scale
    return ShapeResult([(x[0], x[1], x[2] * sh - int(p.pad_out_h), x[3] * sw - int(p.pad_out_w))])
