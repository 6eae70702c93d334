"""Pooling and Interp kernels against loop transcriptions of Caffe's C++ semantics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe2tf.verification.reference import run_node
from caffe2tf.verification.reference.interp import interp_output_size


def loop_pool(x: np.ndarray, method: str, k: tuple[int, int], s: tuple[int, int],
              p: tuple[int, int], ceil: bool) -> np.ndarray:
    """PoolingLayer::Reshape + Forward_cpu, one output at a time."""
    n, c, h, w = x.shape
    rnd = math.ceil if ceil else math.floor
    oh = rnd((h + 2 * p[0] - k[0]) / s[0]) + 1
    ow = rnd((w + 2 * p[1] - k[1]) / s[1]) + 1
    if p[0] or p[1]:
        oh -= (oh - 1) * s[0] >= h + p[0]
        ow -= (ow - 1) * s[1] >= w + p[1]
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s[0] - p[0], j * s[1] - p[1]
            if method == "MAX":
                he, we = min(hs + k[0], h), min(ws + k[1], w)
                hs, ws = max(hs, 0), max(ws, 0)
                y[:, :, i, j] = x[:, :, hs:he, ws:we].max(axis=(2, 3))
            else:
                he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
                size = (he - hs) * (we - ws)
                hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                y[:, :, i, j] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / size
    return y


POOL_CASES = [
    ("MAX", "kernel_size: 3 stride: 2", 8, 8, (3, 3), (2, 2), (0, 0), True),
    ("MAX", "kernel_size: 3 stride: 2", 7, 7, (3, 3), (2, 2), (0, 0), True),
    ("MAX", "kernel_size: 3 stride: 2 pad: 1", 14, 13, (3, 3), (2, 2), (1, 1), True),
    ("AVE", "kernel_size: 3 stride: 2", 8, 9, (3, 3), (2, 2), (0, 0), True),
    ("AVE", "kernel_size: 3 stride: 2 pad: 1", 9, 10, (3, 3), (2, 2), (1, 1), True),
    ("AVE", "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0", 10, 13,
     (3, 2), (2, 3), (1, 0), True),
    ("AVE", "kernel_size: 2 stride: 2 pad: 1", 6, 6, (2, 2), (2, 2), (1, 1), True),
    ("MAX", "kernel_size: 3 stride: 2 round_mode: FLOOR", 8, 8, (3, 3), (2, 2), (0, 0), False),
    ("MAX", "kernel_size: 3 stride: 2 ceil_mode: false", 8, 8, (3, 3), (2, 2), (0, 0), False),
    ("AVE", "kernel_size: 3 stride: 2 pad: 1 ceil_mode: false", 8, 8, (3, 3), (2, 2), (1, 1),
     False),
    ("AVE", "kernel_size: 10 stride: 10", 60, 60, (10, 10), (10, 10), (0, 0), True),
    ("AVE", "kernel_size: 20 stride: 20", 60, 59, (20, 20), (20, 20), (0, 0), True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[f"{c[0]} {c[1]} {c[2]}x{c[3]}"
                                                   for c in POOL_CASES])
def test_pooling_matches_caffe_loops(case: tuple, make_node, rng) -> None:
    method, text, h, w, k, s, p, ceil = case
    x = rng.randn(2, 3, h, w).astype(np.float32)
    node = make_node(f'type: "Pooling" pooling_param {{ pool: {method} {text} }}')
    (y,) = run_node(node, [x])
    want = loop_pool(x.astype(np.float64), method, k, s, p, ceil)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


def test_global_pooling(make_node, rng) -> None:
    x = rng.randn(2, 5, 7, 9).astype(np.float32)
    (ave,) = run_node(make_node('type: "Pooling" pooling_param { pool: AVE global_pooling: true }'),
                      [x])
    (mx,) = run_node(make_node('type: "Pooling" pooling_param { pool: MAX global_pooling: true }'),
                     [x])
    assert ave.shape == mx.shape == (2, 5, 1, 1)
    np.testing.assert_allclose(ave[..., 0, 0], x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(mx[..., 0, 0], x.max(axis=(2, 3)))


def loop_interp(x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """caffe_cpu_interp2 (unpacked), float32 coordinates, one pixel at a time."""
    n, c, h, w = x.shape
    if (h, w) == (oh, ow):
        return x.copy()
    f = np.float32
    rh = f(h - 1) / f(oh - 1) if oh > 1 else f(0)
    rw = f(w - 1) / f(ow - 1) if ow > 1 else f(0)
    y = np.zeros((n, c, oh, ow), np.float32)
    for i in range(oh):
        hr = f(rh * f(i))
        h1 = int(hr)
        hp = 1 if h1 < h - 1 else 0
        l1 = f(hr - f(h1))
        l0 = f(1) - l1
        for j in range(ow):
            wr = f(rw * f(j))
            w1 = int(wr)
            wp = 1 if w1 < w - 1 else 0
            m1 = f(wr - f(w1))
            m0 = f(1) - m1
            y[:, :, i, j] = (l0 * (m0 * x[:, :, h1, w1] + m1 * x[:, :, h1, w1 + wp])
                             + l1 * (m0 * x[:, :, h1 + hp, w1] + m1 * x[:, :, h1 + hp, w1 + wp]))
    return y


INTERP_CASES = [
    ("zoom_factor: 8", (7, 9), (49, 65)),
    ("height: 60 width: 61", (7, 9), (60, 61)),
    ("shrink_factor: 3", (49, 65), (17, 22)),
    ("height: 7 width: 9", (7, 9), (7, 9)),
    ("height: 1 width: 1", (7, 9), (1, 1)),
    ("zoom_factor: 2 pad_beg: -1 pad_end: -1", (9, 11), (13, 17)),
    ("shrink_factor: 2 zoom_factor: 3", (9, 11), (13, 16)),
    ("height: 97 width: 89", (12, 11), (97, 89)),
]


@pytest.mark.parametrize("text,size_in,size_out", INTERP_CASES, ids=[c[0] for c in INTERP_CASES])
def test_interp_matches_caffe_loops(text: str, size_in: tuple[int, int],
                                    size_out: tuple[int, int], make_node, rng) -> None:
    node = make_node(f'type: "Interp" interp_param {{ {text} }}')
    assert interp_output_size(node, *size_in) == size_out
    x = rng.randn(1, 2, *size_in).astype(np.float32)
    (y,) = run_node(node, [x])
    p = node.param.interp_param
    crop = x[:, :, -p.pad_beg:size_in[0] + p.pad_end, -p.pad_beg:size_in[1] + p.pad_end]
    np.testing.assert_allclose(y, loop_interp(crop, *size_out), rtol=1e-6, atol=1e-6)


def test_interp_is_align_corners(make_node) -> None:
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4) * np.ones((1, 1, 2, 1), np.float32)
    (y,) = run_node(make_node('type: "Interp" interp_param { height: 2 width: 7 }'), [x])
    np.testing.assert_allclose(y[0, 0, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3], atol=1e-6)
