"""Caffe ``Pooling`` (MAX and AVE), vectorised over windows.

Output size (``PoolingLayer::Reshape``)::

    OH = ceil((H + 2*ph - kh) / sh) + 1        (round_mode CEIL, the default)
    OH = floor((H + 2*ph - kh) / sh) + 1       (round_mode FLOOR / ceil_mode: false)
    if ph or pw: if (OH - 1)*sh >= H + ph: OH -= 1   (last window starts inside)

Window of output ``oh``: ``hstart = oh*sh - ph``, ``hend = hstart + kh``.

* MAX: max over the window clipped to the input ``[0, H)``. A second top is
  the argmax mask (as float): the flat index ``h*W + w`` of the maximum in the
  unpadded input plane of that (n, c), the first maximum in row-major window
  order on ties (Caffe compares with a strict ``>`` starting from -FLT_MAX, so
  a window with no value above -FLT_MAX gets -1).
* AVE: sum over the window clipped to the input, divided by
  ``(min(hend, H + ph) - hstart) * (min(wend, W + pw) - wstart)``: the window
  clipped to the *padded* input (padding counts, the ceil overhang does not).

Global pooling uses kh, kw = H, W, pad 0, stride 1.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.ir import Node
from caffe2tf.verification.reference._params import (
    Spatial2D, expect_inputs, f32, fail, pool_spatial)
from caffe2tf.verification.reference.registry import kernel

_PP = caffe_pb2.PoolingParameter
_FLT_MAX = float(np.finfo(np.float32).max)


def uses_ceil(param: caffe_pb2.PoolingParameter) -> bool:
    """Ceil rounding unless ``round_mode: FLOOR`` or the forks' ``ceil_mode: false``."""
    if param.HasField("round_mode") and param.round_mode == _PP.FLOOR:
        return False
    if param.HasField("ceil_mode") and not param.ceil_mode:
        return False
    return True


def pooled_size(size: int, k: int, s: int, p: int, ceil: bool) -> int:
    """Caffe's pooled output length along one axis (before the pad rule)."""
    span = size + 2 * p - k
    # Caffe divides as float: ceil(float(span) / s).
    out = (math.ceil(span / s) if ceil else math.floor(span / s)) + 1
    return out


def output_shape(node: Node, h: int, w: int) -> tuple[int, int, Spatial2D]:
    """(OH, OW, window) of a Pooling node for an HxW input."""
    p = node.param.pooling_param
    sp = pool_spatial(node, h, w)
    ceil = uses_ceil(p) and not p.global_pooling
    oh = pooled_size(h, sp.kh, sp.sh, sp.ph, ceil)
    ow = pooled_size(w, sp.kw, sp.sw, sp.pw, ceil)
    if sp.ph or sp.pw:
        if (oh - 1) * sp.sh >= h + sp.ph:
            oh -= 1
        if (ow - 1) * sp.sw >= w + sp.pw:
            ow -= 1
    if oh <= 0 or ow <= 0:
        raise fail(node, f"output would be {oh}x{ow} for input {h}x{w}")
    return oh, ow, sp


def _windows(xp: np.ndarray, sp: Spatial2D, oh: int, ow: int) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) strided view of a padded/extended input."""
    n, c = xp.shape[:2]
    s = xp.strides
    return as_strided(xp, shape=(n, c, oh, ow, sp.kh, sp.kw),
                      strides=(s[0], s[1], s[2] * sp.sh, s[3] * sp.sw, s[2], s[3]),
                      writeable=False)


def _extend(x: np.ndarray, sp: Spatial2D, oh: int, ow: int, fill: float) -> np.ndarray:
    """Pad by (ph, pw) before and as much as the last window needs after."""
    h, w = x.shape[2:]
    after_h = max((oh - 1) * sp.sh + sp.kh - sp.ph - h, 0)
    after_w = max((ow - 1) * sp.sw + sp.kw - sp.pw - w, 0)
    return np.pad(x, ((0, 0), (0, 0), (sp.ph, after_h), (sp.pw, after_w)),
                  constant_values=fill)


def _ave_divisor(size: int, k: int, s: int, p: int, out: int) -> np.ndarray:
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    return (end - start).astype(np.float64)


def _max_mask(win: np.ndarray, y: np.ndarray, sp: Spatial2D, width: int) -> np.ndarray:
    """Caffe's MAX-pooling mask top from the (N, C, OH, OW, kh, kw) windows."""
    n, c, oh, ow, kh, kw = win.shape
    first = win.reshape(n, c, oh, ow, kh * kw).argmax(axis=-1)  # first maximum
    dy, dx = np.divmod(first, kw)
    hh = np.arange(oh).reshape(oh, 1) * sp.sh - sp.ph + dy
    ww = np.arange(ow).reshape(1, ow) * sp.sw - sp.pw + dx
    mask = (hh * width + ww).astype(np.float64)
    return f32(np.where(y > -_FLT_MAX, mask, -1.0))


@kernel("Pooling")
def pooling(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``Pooling``: MAX or AVE with Caffe's rounding and divisor rules."""
    expect_inputs(node, inputs, 1, ndim=4)
    x = inputs[0]
    h, w = x.shape[2:]
    oh, ow, sp = output_shape(node, h, w)
    method = node.param.pooling_param.pool
    n_top = len(node.outputs)
    if n_top == 2 and method != _PP.MAX:
        raise fail(node, "only MAX pooling has a second (mask) top")
    if n_top not in (1, 2):
        raise fail(node, f"Pooling has 1 or 2 tops, got {n_top}")
    if method == _PP.MAX:
        xp = _extend(np.asarray(x, dtype=np.float32), sp, oh, ow, -np.inf)
        win = _windows(xp, sp, oh, ow)
        y = win.max(axis=(4, 5))
        # a window entirely outside the input keeps Caffe's initial -FLT_MAX
        y = np.where(np.isneginf(y), -_FLT_MAX, y)
        if n_top == 1:
            return [f32(y)]
        return [f32(y), _max_mask(win, y, sp, w)]
    if method == _PP.AVE:
        xp = _extend(np.asarray(x, dtype=np.float64), sp, oh, ow, 0.0)
        total = _windows(xp, sp, oh, ow).sum(axis=(4, 5))
        div = np.outer(_ave_divisor(h, sp.kh, sp.sh, sp.ph, oh),
                       _ave_divisor(w, sp.kw, sp.sw, sp.pw, ow))
        return [f32(total / div)]
    raise fail(node, f"pooling method {_PP.PoolMethod.Name(method)} is not supported")
