"""caffe_math: Caffe's arithmetic re-derived element by element."""
import numpy as np
import pytest

from caffe2tf.backend import caffe_math


def _caffe_interp_1d(x: np.ndarray, out: int) -> np.ndarray:
    """caffe_cpu_interp2 along one axis, written as the C++ loop (float32 positions)."""
    n = len(x)
    if n == out:
        return x.copy()
    r = np.float32(n - 1) / np.float32(out - 1) if out > 1 else np.float32(0)
    y = np.empty(out, np.float32)
    for i in range(out):
        pos = np.float32(r * np.float32(i))
        lo = int(pos)
        step = 1 if lo < n - 1 else 0
        l1 = np.float32(pos - np.float32(lo))
        y[i] = (np.float32(1) - l1) * x[lo] + l1 * x[lo + step]
    return y


@pytest.mark.parametrize("n,out", [(7, 57), (60, 473), (9, 1), (1, 60), (5, 5), (8, 3), (2, 9), (473, 60)])
def test_interp_layer_matches_caffe_loop(n, out):
    """CaffeInterp (TF ResizeBilinear, align corners) against interp.cpp's loop, both axes."""
    from caffe2tf.backend.layers import CaffeInterp

    x = np.random.default_rng(n).standard_normal((1, n, n + 2, 3)).astype(np.float32)
    got = np.asarray(CaffeInterp((out, out + 1))(x))
    rows = np.stack([np.stack([_caffe_interp_1d(x[0, i, :, c], out + 1) for c in range(3)], -1) for i in range(n)])
    want = np.stack([np.stack([_caffe_interp_1d(rows[:, j, c], out) for c in range(3)], -1)
                     for j in range(out + 1)], 1)
    np.testing.assert_allclose(got[0], want, rtol=0, atol=2e-6 * max(1.0, np.abs(want).max()))


def test_interp_layer_crops_negative_pads():
    from caffe2tf.backend.layers import CaffeInterp

    x = np.random.default_rng(0).standard_normal((1, 9, 11, 2)).astype(np.float32)
    got = np.asarray(CaffeInterp((7, 9), pad_beg=-1, pad_end=-1)(x))
    np.testing.assert_array_equal(got, x[:, 1:-1, 1:-1, :])  # same size after the crop: a copy


def test_pool_overhang_and_divisor():
    # 8 wide, k3 s2, ceil: 4 outputs, the last window starts at 6 and overhangs by 1
    assert caffe_math.pool_overhang(8, 3, 2, 0, 4) == 1
    np.testing.assert_array_equal(caffe_math.ave_pool_divisor(8, 3, 2, 0, 4), [3, 3, 3, 2])
    # 9 wide, k3 s2 p1: 5 outputs; padding counts: first window [-1, 2) has 3
    np.testing.assert_array_equal(caffe_math.ave_pool_divisor(9, 3, 2, 1, 5), [3, 3, 3, 3, 3])
    # 10 wide, k3 s2 p1, ceil -> 6 outputs, last window [9, 12) clipped to H + pad = 11: 2
    np.testing.assert_array_equal(caffe_math.ave_pool_divisor(10, 3, 2, 1, 6), [3, 3, 3, 3, 3, 2])
    assert caffe_math.pool_overhang(10, 3, 2, 1, 6) == 2
    corr = caffe_math.ave_pool_correction((8, 10), (3, 3), (2, 2), (0, 1), (4, 6))
    assert corr.shape == (4, 6) and corr[0, 0] == 1 and corr[-1, -1] == pytest.approx(9 / 4)


def test_exp_and_log_constants():
    inner, outer = caffe_math.exp_constants(2.0, 0.5, 0.1)
    assert inner == np.float32(np.float32(np.log(np.float32(2))) * np.float32(0.5))
    assert outer == np.float32(np.power(np.float32(2), np.float32(0.1)))
    assert caffe_math.exp_constants(-1, 1, 0) == (1, 1)
    assert caffe_math.log_base_scale(-1) == 1
    assert caffe_math.log_base_scale(10) == pytest.approx(1 / np.log(10), rel=1e-6)
