"""Each NCHW -> NHWC fact of layout.py, checked against a direct computation."""
import numpy as np
import pytest
import tensorflow as tf

from caffe2tf.backend import layout

rng = np.random.default_rng(0)


def test_axis_mapping_rank4_and_others():
    assert [layout.to_keras_axis(a, 4) for a in range(4)] == [0, 3, 1, 2]
    assert [layout.to_keras_axis(a, 4) for a in (-1, -2, -3, -4)] == [2, 1, 3, 0]
    assert [layout.to_keras_axis(a, 3) for a in (0, 1, 2, -1)] == [0, 1, 2, 2]
    assert layout.to_keras_axis(1, 2) == 1
    with pytest.raises(ValueError):
        layout.to_keras_axis(4, 4)


def test_activation_round_trip_and_shape():
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    k = layout.nchw_to_keras(x)
    assert k.shape == (2, 4, 5, 3) == layout.to_keras_shape(x.shape)
    assert k[1, 2, 3, 0] == x[1, 0, 2, 3]
    np.testing.assert_array_equal(layout.keras_to_nchw(k), x)
    y = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(layout.nchw_to_keras(y), y)
    for rank in range(1, 6):
        p, q = layout.caffe_to_keras_perm(rank), layout.keras_to_caffe_perm(rank)
        assert [p[i] for i in q] == list(range(rank))


def _caffe_conv(x, w, groups):
    """Direct NCHW valid cross-correlation with groups (Caffe's definition)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    out = np.zeros((n, o, h - kh + 1, wd - kw + 1), np.float64)
    for oc in range(o):
        g = oc // og
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                patch = x[:, g * cg:(g + 1) * cg, i:i + kh, j:j + kw]
                out[:, oc, i, j] = np.sum(patch * w[oc], axis=(1, 2, 3))
    return out


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_kernel_oihw_to_hwio(groups):
    x = rng.standard_normal((1, 4, 6, 5)).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, 3, 2)).astype(np.float32)
    got = tf.nn.conv2d(layout.nchw_to_keras(x), layout.conv_kernel_oihw_to_hwio(w), 1, "VALID") if groups == 1 \
        else tf.keras.layers.Conv2D(6, (3, 2), groups=groups, use_bias=False)
    if groups != 1:
        layer = got
        layer.build((None, 6, 5, 4))
        layer.set_weights([layout.conv_kernel_oihw_to_hwio(w)])
        got = layer(layout.nchw_to_keras(x))
    np.testing.assert_allclose(layout.keras_to_nchw(np.asarray(got)), _caffe_conv(x, w, groups), rtol=1e-5, atol=1e-5)


def test_depthwise_kernel():
    c, m = 3, 2
    x = rng.standard_normal((1, c, 5, 5)).astype(np.float32)
    w = rng.standard_normal((c * m, 1, 3, 3)).astype(np.float32)
    got = tf.nn.depthwise_conv2d(layout.nchw_to_keras(x), layout.depthwise_kernel(w, c), [1, 1, 1, 1], "VALID")
    np.testing.assert_allclose(layout.keras_to_nchw(got.numpy()), _caffe_conv(x, w, c), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        layout.depthwise_kernel(np.zeros((6, 2, 3, 3), np.float32), 3)


def test_deconv_kernel_is_col2im_of_caffe_weights():
    ci, co, k, s = 3, 2, 3, 2
    x = rng.standard_normal((1, ci, 4, 3)).astype(np.float32)
    w = rng.standard_normal((ci, co, k, k)).astype(np.float32)
    # Caffe: out[o, i*s + a, j*s + b] += x[c, i, j] * w[c, o, a, b]
    ref = np.zeros((1, co, (4 - 1) * s + k, (3 - 1) * s + k))
    for i in range(4):
        for j in range(3):
            ref[0, :, i * s:i * s + k, j * s:j * s + k] += np.einsum("c,coab->oab", x[0, :, i, j], w)
    got = tf.nn.conv2d_transpose(layout.nchw_to_keras(x), layout.deconv_kernel_to_keras(w),
                                 (1,) + layout.to_keras_shape(ref.shape)[1:], s, "VALID")
    np.testing.assert_allclose(layout.keras_to_nchw(got.numpy()), ref, rtol=1e-5, atol=1e-5)


def test_inner_product_weight_after_nhwc():
    c, h, w, n = 3, 2, 4, 5
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((n, c * h * w)).astype(np.float32)
    ref = x.reshape(2, -1) @ wt.T
    got = layout.nchw_to_keras(x).reshape(2, -1) @ layout.inner_product_weight_after_nhwc(wt, c, h, w).T
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        layout.inner_product_weight_after_nhwc(wt, c, h, w + 1)


def test_inner_product_kernel():
    w = rng.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_array_equal(layout.inner_product_kernel(w, transpose=False), w.T)
    np.testing.assert_array_equal(layout.inner_product_kernel(w, transpose=True), w)


@pytest.mark.parametrize("shape,axis,nparam", [((2, 3, 4, 5), 1, 1), ((2, 3, 4, 5), 1, 2), ((2, 3, 4, 5), 0, 2),
                                              ((2, 3, 4, 5), 2, 2), ((2, 3, 4), 1, 2), ((2, 3, 4, 5), 1, 3)])
def test_param_broadcast(shape, axis, nparam):
    x = rng.standard_normal(shape).astype(np.float32)
    p = rng.standard_normal(shape[axis:axis + nparam]).astype(np.float32)
    ref = x * p.reshape(p.shape + (1,) * (len(shape) - axis - nparam))
    kp = layout.param_to_keras_broadcast(p, shape, axis)
    assert kp.shape == layout.param_broadcast_shape(shape, axis, nparam)
    np.testing.assert_array_equal(layout.keras_to_nchw(layout.nchw_to_keras(x) * kp), ref)


def test_conv_kernel_hwio_to_oihw_inverts():
    w = np.random.default_rng(0).normal(size=(6, 2, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(layout.conv_kernel_hwio_to_oihw(layout.conv_kernel_oihw_to_hwio(w)), w)
