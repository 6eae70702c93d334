"""Convolution / Deconvolution / InnerProduct kernels against direct loop definitions."""
from __future__ import annotations

import numpy as np
import pytest

from caffe2tf.errors import ShapeError
from caffe2tf.verification.reference import run_node


def naive_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: tuple[int, int],
               pad: tuple[int, int], dil: tuple[int, int], group: int) -> np.ndarray:
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // group
    oh = (h + 2 * pad[0] - (dil[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (wd + 2 * pad[1] - (dil[1] * (kw - 1) + 1)) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                acc = 0.0
                for ci in range(cg):
                    for a in range(kh):
                        for bb in range(kw):
                            hh = i * stride[0] - pad[0] + a * dil[0]
                            ww = j * stride[1] - pad[1] + bb * dil[1]
                            if 0 <= hh < h and 0 <= ww < wd:
                                acc = acc + w[oc, ci, a, bb] * x[:, g * cg + ci, hh, ww]
                y[:, oc, i, j] = acc + (b[oc] if b is not None else 0.0)
    return y


def naive_deconv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, pad: int,
                 group: int) -> np.ndarray:
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = c // group
    fh, fw = stride * (h - 1) + kh, stride * (wd - 1) + kw
    y = np.zeros((n, og * group, fh, fw))
    for ci in range(c):
        g = ci // cg
        for i in range(h):
            for j in range(wd):
                for oc in range(og):
                    y[:, g * og + oc, i * stride:i * stride + kh, j * stride:j * stride + kw] += \
                        x[:, ci, i, j][:, None, None] * w[ci, oc]
    y = y[:, :, pad:fh - pad, pad:fw - pad]
    if b is not None:
        y = y + b[None, :, None, None]
    return y


CONV_CASES = [
    # (c, o, h, w, conv_param text, (kh, kw), stride, pad, dilation, group, bias)
    (3, 4, 7, 8, "kernel_size: 3 pad: 1", (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    (4, 6, 9, 7, "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
     (3, 2), (2, 1), (1, 0), (1, 1), 1, True),
    (6, 6, 8, 8, "kernel_size: 3 stride: 2 pad: 1 group: 6 bias_term: false",
     (3, 3), (2, 2), (1, 1), (1, 1), 6, False),
    (4, 6, 10, 10, "kernel_size: 3 group: 2 dilation: 2 pad: 2", (3, 3), (1, 1), (2, 2),
     (2, 2), 2, True),
    (5, 3, 6, 5, "kernel_size: 1 bias_term: false", (1, 1), (1, 1), (0, 0), (1, 1), 1, False),
    (3, 2, 10, 10, "kernel_size: 2 stride: 3 pad: 1", (2, 2), (3, 3), (1, 1), (1, 1), 1, True),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c[4] if isinstance(c, str) else None)
def test_convolution_matches_definition(case: tuple, make_node, rng) -> None:
    c, o, h, w, text, (kh, kw), stride, pad, dil, group, has_bias = case
    x = rng.randn(2, c, h, w).astype(np.float32)
    weight = rng.randn(o, c // group, kh, kw).astype(np.float32)
    bias = rng.randn(o).astype(np.float32) if has_bias else None
    node = make_node(f'type: "Convolution" convolution_param {{ num_output: {o} {text} }}',
                     [weight] + ([bias] if has_bias else []))
    (y,) = run_node(node, [x])
    want = naive_conv(x.astype(np.float64), weight, bias, stride, pad, dil, group)
    assert y.dtype == np.float32 and y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_convolution_rejects_wrong_weight_shape(make_node, rng) -> None:
    node = make_node('name: "c" type: "Convolution" convolution_param { num_output: 2 '
                     'kernel_size: 3 bias_term: false }', [np.zeros((2, 4, 3, 3))])
    with pytest.raises(ShapeError, match="'c'"):
        run_node(node, [rng.randn(1, 3, 5, 5)])


@pytest.mark.parametrize("c,o,group,k,stride,pad,bias", [
    (3, 2, 1, 3, 2, 0, True),
    (6, 4, 1, 4, 2, 1, True),
    (4, 4, 4, 4, 2, 1, False),
    (4, 6, 2, 3, 1, 1, True),
])
def test_deconvolution_matches_definition(c, o, group, k, stride, pad, bias, make_node,
                                          rng) -> None:
    x = rng.randn(2, c, 5, 4).astype(np.float32)
    weight = rng.randn(c, o // group, k, k).astype(np.float32)
    b = rng.randn(o).astype(np.float32) if bias else None
    node = make_node(f'type: "Deconvolution" convolution_param {{ num_output: {o} '
                     f'kernel_size: {k} stride: {stride} pad: {pad} group: {group} '
                     f'bias_term: {"true" if bias else "false"} }}',
                     [weight] + ([b] if bias else []))
    (y,) = run_node(node, [x])
    want = naive_deconv(x.astype(np.float64), weight, b, stride, pad, group)
    assert y.shape == want.shape == (2, o, stride * 4 + k - 2 * pad, stride * 3 + k - 2 * pad)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_inner_product_axis_and_transpose(make_node, rng) -> None:
    x = rng.randn(2, 3, 4, 5).astype(np.float32)
    w = rng.randn(6, 20).astype(np.float32)
    b = rng.randn(6).astype(np.float32)
    node = make_node('type: "InnerProduct" inner_product_param { num_output: 6 axis: 2 }', [w, b])
    (y,) = run_node(node, [x])
    assert y.shape == (2, 3, 6)
    want = (x.reshape(6, 20) @ w.T.astype(np.float64) + b).reshape(2, 3, 6)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    node_t = make_node('type: "InnerProduct" inner_product_param { num_output: 6 transpose: true '
                       'bias_term: false }', [np.ascontiguousarray(w.T)])
    x2 = rng.randn(4, 20).astype(np.float32)
    (y2,) = run_node(node_t, [x2])
    np.testing.assert_allclose(y2, x2 @ w.T, rtol=1e-5, atol=1e-5)


def test_convolution_in_row_blocks(make_node, rng, monkeypatch) -> None:
    from caffe2tf.verification.reference import conv

    x = rng.randn(1, 4, 11, 9).astype(np.float32)
    weight = rng.randn(6, 2, 3, 3).astype(np.float32)
    node = make_node('type: "Convolution" convolution_param { num_output: 6 kernel_size: 3 '
                     'stride: 2 pad: 1 group: 2 dilation: 2 bias_term: false }', [weight])
    (whole,) = run_node(node, [x])
    monkeypatch.setattr(conv, "IM2COL_BYTES", 1)  # one output row per block
    (blocks,) = run_node(node, [x])
    np.testing.assert_array_equal(whole, blocks)
    want = naive_conv(x.astype(np.float64), weight, None, (2, 2), (1, 1), (2, 2), 2)
    np.testing.assert_allclose(blocks, want, rtol=1e-5, atol=1e-5)
