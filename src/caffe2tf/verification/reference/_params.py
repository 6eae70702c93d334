"""Small helpers shared by reference kernels: Caffe's parameter conventions."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caffe2tf import ir
from caffe2tf.ir import Node
from caffe2tf.errors import ShapeError


def fail(node: Node, message: str) -> ShapeError:
    """A one-line error naming the layer."""
    return ShapeError(f"{node.type}: {message}", layer=node.name, line=node.line)


def canonical_axis(node: Node, axis: int, ndim: int, *, allow_end: bool = False) -> int:
    """Caffe's ``Blob::CanonicalAxisIndex``: negative axes count from the end."""
    try:
        return ir.canonical_axis(axis, ndim, allow_end=allow_end)
    except ValueError:
        raise fail(node, f"axis {axis} out of range for a {ndim}-D blob") from None


def f32(x: np.ndarray) -> np.ndarray:
    """Cast to a C-contiguous float32 array (the dtype of every Caffe blob)."""
    return np.asarray(x, dtype=np.float32, order="C")


@dataclass(frozen=True)
class Spatial2D:
    """Kernel/stride/pad/dilation of a 2-D convolution or pooling window."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int = 1
    dw: int = 1


def _pick(node: Node, repeated: list[int], h: int | None, w: int | None,
          default: int, what: str) -> tuple[int, int]:
    if h is not None or w is not None:
        if repeated:
            raise fail(node, f"{what} given both as {what} and {what}_h/{what}_w")
        return (default if h is None else h), (default if w is None else w)
    if not repeated:
        return default, default
    if len(repeated) == 1:
        return repeated[0], repeated[0]
    if len(repeated) == 2:
        return repeated[0], repeated[1]
    raise fail(node, f"only 2-D {what} is supported, got {len(repeated)} values")


def conv_spatial(node: Node) -> Spatial2D:
    """Window of a Convolution/Deconvolution (``convolution_param``)."""
    p = node.param.convolution_param
    kh, kw = _pick(node, list(p.kernel_size),
                   p.kernel_h if p.HasField("kernel_h") else None,
                   p.kernel_w if p.HasField("kernel_w") else None, 0, "kernel")
    sh, sw = _pick(node, list(p.stride), p.stride_h if p.HasField("stride_h") else None,
                   p.stride_w if p.HasField("stride_w") else None, 1, "stride")
    ph, pw = _pick(node, list(p.pad), p.pad_h if p.HasField("pad_h") else None,
                   p.pad_w if p.HasField("pad_w") else None, 0, "pad")
    dh, dw = _pick(node, list(p.dilation), None, None, 1, "dilation")
    if min(kh, kw, sh, sw, dh, dw) <= 0:
        raise fail(node, "kernel, stride and dilation must be positive")
    return Spatial2D(kh, kw, sh, sw, ph, pw, dh, dw)


def pool_spatial(node: Node, height: int, width: int) -> Spatial2D:
    """Window of a Pooling layer; global pooling uses the whole input, pad 0, stride 1."""
    p = node.param.pooling_param
    if p.global_pooling:
        return Spatial2D(height, width, 1, 1, 0, 0)

    def opt(field: str) -> int | None:
        return getattr(p, field) if p.HasField(field) else None

    ks = [p.kernel_size] if p.HasField("kernel_size") else []
    kh, kw = _pick(node, ks, opt("kernel_h"), opt("kernel_w"), 0, "kernel")
    ss = [p.stride] if p.HasField("stride") else []
    sh, sw = _pick(node, ss, opt("stride_h"), opt("stride_w"), 1, "stride")
    ps = [p.pad] if p.HasField("pad") else []
    ph, pw = _pick(node, ps, opt("pad_h"), opt("pad_w"), 0, "pad")
    if min(kh, kw, sh, sw) <= 0:
        raise fail(node, "pooling kernel and stride must be positive")
    return Spatial2D(kh, kw, sh, sw, ph, pw)


def expect_inputs(node: Node, inputs: list[np.ndarray] | tuple[np.ndarray, ...],
                  n: int | tuple[int, int], *, ndim: int | None = None) -> None:
    """Check the number of bottoms (exact, or an inclusive range) and their rank."""
    lo, hi = (n, n) if isinstance(n, int) else n
    if not lo <= len(inputs) <= hi:
        want = str(lo) if lo == hi else f"{lo}..{hi}"
        raise fail(node, f"expects {want} bottom(s), got {len(inputs)}")
    if ndim is not None and inputs and inputs[0].ndim != ndim:
        raise fail(node, f"expects a {ndim}-D bottom, got shape {tuple(inputs[0].shape)}")
