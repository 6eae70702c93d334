"""Convolution, Deconvolution and InnerProduct, as Caffe computes them.

Caffe lowers a convolution to im2col + GEMM per group and image::

    col[(c, i, j), (oh, ow)] = x_pad[c, oh*sh + i*dh, ow*sw + j*dw]
    y[g] = W[g] (O/g, C/g*kh*kw) @ col[g] (C/g*kh*kw, OH*OW) + b
    OH = (H + 2*ph - (dh*(kh-1) + 1)) // sh + 1

and a deconvolution to the transposed GEMM followed by col2im (accumulating
overlapping windows)::

    col[g] = W[g]^T (O/g*kh*kw, C/g) @ x[g] (C/g, H*W)
    y[o, h*sh + i*dh - ph, w*sw + j*dw - pw] += col[(o, i, j), (h, w)]
    OH = sh*(H - 1) + dh*(kh - 1) + 1 - 2*ph

InnerProduct flattens everything from ``axis`` on: ``y = x (M, K) @ W^T + b``
with W (N, K), or ``x @ W`` with W (K, N) when ``transpose``.

Every product is accumulated in float64 (``GEMM_DTYPE``) and rounded to float32
once, so what differs from Caffe is Caffe's own float32 rounding. (On PSPNet-50
at 473x473 float64 costs about 10% more time than float32 here: im2col copies,
not the GEMMs, dominate.)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from caffe2tf.ir import Node
from caffe2tf.verification.reference._params import (
    canonical_axis, conv_spatial, expect_inputs, f32, fail)
from caffe2tf.verification.reference.registry import kernel

# dtype of every GEMM (and its inputs); float32 is faster but less exact.
GEMM_DTYPE: type = np.float64
# im2col is built in blocks of output rows of at most about this many bytes.
IM2COL_BYTES = 64 << 20


def _im2col(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
            oh: int, ow: int) -> np.ndarray:
    """(C, Hp, Wp) padded image -> (C*kh*kw, oh*ow) column matrix (a copy)."""
    c = x.shape[0]
    s0, s1, s2 = x.strides
    view = as_strided(x, shape=(c, kh, kw, oh, ow),
                      strides=(s0, s1 * dh, s2 * dw, s1 * sh, s2 * sw), writeable=False)
    return view.reshape(c * kh * kw, oh * ow)


def _weights(node: Node, n: int) -> tuple[np.ndarray, ...]:
    if len(node.weights) < n:
        raise fail(node, f"expects {n} weight blob(s), got {len(node.weights)}")
    return node.weights


def _bias(node: Node, bias_term: bool, count: int) -> np.ndarray | None:
    if not bias_term:
        return None
    w = _weights(node, 2)
    b = np.asarray(w[1]).reshape(-1)
    if b.size != count:
        raise fail(node, f"bias has {b.size} values, expected {count}")
    return b


@kernel("Convolution")
def convolution(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``Convolution`` (groups, dilation, asymmetric kernel/stride/pad)."""
    p = node.param.convolution_param
    expect_inputs(node, inputs, (1, 99), ndim=4)
    sp = conv_spatial(node)
    group = p.group
    weight = np.asarray(_weights(node, 1)[0])
    o = p.num_output or weight.shape[0]
    bias = _bias(node, p.bias_term, o)
    outs = []
    for x in inputs:  # Caffe applies the same filters to every bottom
        n, c, h, w = x.shape
        if c % group or o % group:
            raise fail(node, f"channels {c} / num_output {o} not divisible by group {group}")
        if weight.shape != (o, c // group, sp.kh, sp.kw):
            raise fail(node, f"weight shape {weight.shape} does not fit "
                             f"{(o, c // group, sp.kh, sp.kw)}")
        oh = (h + 2 * sp.ph - (sp.dh * (sp.kh - 1) + 1)) // sp.sh + 1
        ow = (w + 2 * sp.pw - (sp.dw * (sp.kw - 1) + 1)) // sp.sw + 1
        if oh <= 0 or ow <= 0:
            raise fail(node, f"output would be {oh}x{ow} for input {h}x{w}")
        cg, og = c // group, o // group
        k = cg * sp.kh * sp.kw
        dtype = GEMM_DTYPE
        xp = np.pad(np.asarray(x, dtype=dtype),
                    ((0, 0), (0, 0), (sp.ph, sp.ph), (sp.pw, sp.pw)))
        wmat = weight.reshape(group, og, k).astype(dtype)
        y = np.empty((n, group, og, oh * ow), dtype=dtype)
        pointwise = sp.kh == sp.kw == 1 and sp.sh == sp.sw == 1 and sp.ph == sp.pw == 0
        # bound the im2col copy: process blocks of output rows
        rows = max(1, min(oh, IM2COL_BYTES // max(1, k * group * ow * np.dtype(dtype).itemsize)))
        for i in range(n):
            if pointwise:
                np.matmul(wmat, xp[i].reshape(group, k, oh * ow), out=y[i])
                continue
            for r0 in range(0, oh, rows):
                r1 = min(oh, r0 + rows)
                col = _im2col(xp[i, :, r0 * sp.sh:], sp.kh, sp.kw, sp.sh, sp.sw, sp.dh, sp.dw,
                              r1 - r0, ow)
                # rows of col are (c, i, j) with c outermost: split them by group
                y[i, :, :, r0 * ow:r1 * ow] = np.matmul(wmat, col.reshape(group, k, -1))
        y = y.reshape(n, o, oh * ow)
        if bias is not None:
            y += bias.astype(dtype)[None, :, None]
        outs.append(f32(y.reshape(n, o, oh, ow)))
    return outs


@kernel("Deconvolution")
def deconvolution(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``Deconvolution``: transposed GEMM + col2im, W shaped (C, O/g, kh, kw)."""
    p = node.param.convolution_param
    expect_inputs(node, inputs, (1, 99), ndim=4)
    sp = conv_spatial(node)
    group = p.group
    weight = np.asarray(_weights(node, 1)[0])
    o = p.num_output or weight.shape[1] * group
    bias = _bias(node, p.bias_term, o)
    outs = []
    for x in inputs:
        n, c, h, w = x.shape
        if c % group or o % group:
            raise fail(node, f"channels {c} / num_output {o} not divisible by group {group}")
        cg, og = c // group, o // group
        if weight.shape != (c, og, sp.kh, sp.kw):
            raise fail(node, f"weight shape {weight.shape} does not fit {(c, og, sp.kh, sp.kw)}")
        oh = sp.sh * (h - 1) + sp.dh * (sp.kh - 1) + 1 - 2 * sp.ph
        ow = sp.sw * (w - 1) + sp.dw * (sp.kw - 1) + 1 - 2 * sp.pw
        if oh <= 0 or ow <= 0:
            raise fail(node, f"output would be {oh}x{ow} for input {h}x{w}")
        dtype = GEMM_DTYPE
        # Full (uncropped) output canvas, cropped by the padding afterwards.
        fh = sp.sh * (h - 1) + sp.dh * (sp.kh - 1) + 1
        fw = sp.sw * (w - 1) + sp.dw * (sp.kw - 1) + 1
        canvas = np.zeros((n, o, fh, fw), dtype=dtype)
        wmat = weight.reshape(group, cg, og * sp.kh * sp.kw).astype(dtype)
        xd = np.asarray(x, dtype=dtype).reshape(n, group, cg, h * w)
        for g in range(group):
            # col: (n, og, kh, kw, h, w)
            col = np.matmul(wmat[g].T[None], xd[:, g]).reshape(n, og, sp.kh, sp.kw, h, w)
            target = canvas[:, g * og:(g + 1) * og]
            for i in range(sp.kh):
                hs = i * sp.dh
                for j in range(sp.kw):
                    ws = j * sp.dw
                    target[:, :, hs:hs + sp.sh * (h - 1) + 1:sp.sh,
                           ws:ws + sp.sw * (w - 1) + 1:sp.sw] += col[:, :, i, j]
        y = canvas[:, :, sp.ph:sp.ph + oh, sp.pw:sp.pw + ow]
        if bias is not None:
            y = y + bias.astype(dtype)[None, :, None, None]
        outs.append(f32(y))
    return outs


@kernel("InnerProduct")
def inner_product(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Caffe ``InnerProduct``: ``y = flatten(x, axis) @ W^T + b`` (``x @ W`` if transpose)."""
    p = node.param.inner_product_param
    expect_inputs(node, inputs, 1)
    x = inputs[0]
    axis = canonical_axis(node, p.axis, x.ndim)
    m = int(np.prod(x.shape[:axis], dtype=np.int64))
    k = int(np.prod(x.shape[axis:], dtype=np.int64))
    weight = np.asarray(_weights(node, 1)[0])
    n_out = p.num_output or (weight.shape[1] if p.transpose else weight.shape[0])
    want = (k, n_out) if p.transpose else (n_out, k)
    if weight.shape != want:
        raise fail(node, f"weight shape {weight.shape} does not fit {want}")
    bias = _bias(node, p.bias_term, n_out)
    dtype = GEMM_DTYPE
    x2 = np.asarray(x, dtype=dtype).reshape(m, k)
    wd = weight.astype(dtype)
    y = x2 @ (wd if p.transpose else wd.T)
    if bias is not None:
        y = y + bias.astype(dtype)[None, :]
    return [f32(y.reshape(tuple(x.shape[:axis]) + (n_out,)))]
