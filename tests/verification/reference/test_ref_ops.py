"""Element-wise, normalisation and shape kernels of the reference executor."""
from __future__ import annotations

import numpy as np
import pytest

from caffe2tf.errors import ShapeError
from caffe2tf.verification.reference import run_node, supported_types


def test_registry_covers_the_brief() -> None:
    want = {"Convolution", "Deconvolution", "InnerProduct", "Pooling", "ReLU", "PReLU", "ELU",
            "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log", "Threshold", "Dropout",
            "BatchNorm", "Scale", "Bias", "BN", "LRN", "MVN", "Concat", "Slice", "Split",
            "Eltwise", "Softmax", "Flatten", "Reshape", "Crop", "Interp", "ArgMax", "Reduction",
            "Clip", "Swish", "ReLU6", "Normalize", "Permute", "PriorBox", "DetectionOutput",
            "Upsample", "Tile"}
    assert want <= set(supported_types())


ELEMENTWISE = [
    ('type: "ReLU" relu_param { negative_slope: 0.1 }', lambda x: np.where(x > 0, x, 0.1 * x)),
    ('type: "ELU" elu_param { alpha: 0.7 }', lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    ('type: "Sigmoid"', lambda x: 1 / (1 + np.exp(-x))),
    ('type: "TanH"', np.tanh),
    ('type: "AbsVal"', np.abs),
    ('type: "BNLL"', lambda x: np.log(1 + np.exp(x))),
    ('type: "Power" power_param { power: 2 scale: 0.5 shift: 1 }', lambda x: (1 + 0.5 * x) ** 2),
    ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.1 }', lambda x: 2 ** (0.1 + 0.5 * x)),
    ('type: "Exp"', np.exp),
    ('type: "Log" log_param { base: 10 scale: 0.5 shift: 5 }', lambda x: np.log10(5 + 0.5 * x)),
    ('type: "Threshold" threshold_param { threshold: 0.2 }', lambda x: (x > 0.2) * 1.0),
    ('type: "Dropout" dropout_param { dropout_ratio: 0.5 }', lambda x: x),
    ('type: "Dropout" dropout_param { dropout_ratio: 0.3 scale_train: false }', lambda x: 0.7 * x),
    ('type: "Clip" clip_param { min: -0.5 max: 0.7 }', lambda x: np.clip(x, -0.5, 0.7)),
    ('type: "Swish" swish_param { beta: 2 }', lambda x: x / (1 + np.exp(-2 * x))),
    ('type: "ReLU6"', lambda x: np.clip(x, 0, 6)),
]


@pytest.mark.parametrize("text,fn", ELEMENTWISE, ids=[t for t, _ in ELEMENTWISE])
def test_elementwise(text: str, fn, make_node, rng) -> None:
    x = (rng.randn(2, 3, 4, 5) * 2).astype(np.float32)
    (y,) = run_node(make_node(text), [x])
    np.testing.assert_allclose(y, fn(x.astype(np.float64)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("slopes", [np.array([0.25]), np.array([0.1, -0.2, 0.3])])
def test_prelu(slopes: np.ndarray, make_node, rng) -> None:
    x = rng.randn(2, 3, 4, 4).astype(np.float32)
    (y,) = run_node(make_node('type: "PReLU"', [slopes]), [x])
    a = slopes.reshape(-1, 1, 1) if slopes.size > 1 else slopes[0]
    np.testing.assert_allclose(y, np.where(x > 0, x, a * x), rtol=1e-6)


@pytest.mark.parametrize("factor", [1.0, 0.5, 0.0])
def test_batchnorm_scale_factor(factor: float, make_node, rng) -> None:
    x = rng.randn(2, 3, 4, 4).astype(np.float32)
    mean, var = rng.randn(3), rng.rand(3) + 0.5
    node = make_node('type: "BatchNorm" batch_norm_param { eps: 0.001 }',
                     [mean, var, np.array([factor])])
    (y,) = run_node(node, [x])
    s = 0.0 if factor == 0 else 1 / factor
    m, v = (mean * s).reshape(3, 1, 1), (var * s).reshape(3, 1, 1)
    np.testing.assert_allclose(y, (x - m) / np.sqrt(v + 0.001), rtol=1e-5, atol=1e-5)


def test_batchnorm_batch_statistics(make_node, rng) -> None:
    x = rng.randn(3, 2, 4, 4).astype(np.float32)
    node = make_node('type: "BatchNorm" batch_norm_param { use_global_stats: false }',
                     [np.zeros(2), np.ones(2), np.ones(1)])
    (y,) = run_node(node, [x])
    m = x.mean(axis=(0, 2, 3), keepdims=True)
    v = x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - m) / np.sqrt(v + 1e-5), rtol=1e-5, atol=1e-5)


def test_bn_pspnet(make_node, rng) -> None:
    x = rng.randn(1, 4, 3, 3).astype(np.float32)
    slope, bias, mean, var = rng.randn(4), rng.randn(4), rng.randn(4), rng.rand(4)
    (y,) = run_node(make_node('type: "BN" bn_param { eps: 0.0001 }', [slope, bias, mean, var]),
                    [x])
    r = lambda v: v.reshape(4, 1, 1)  # noqa: E731
    want = r(slope) * (x - r(mean)) / np.sqrt(r(var) + 1e-4) + r(bias)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_scale_bias_axis_and_two_bottoms(make_node, rng) -> None:
    x = rng.randn(2, 3, 4, 5).astype(np.float32)
    s, b = rng.randn(3, 4), rng.randn(3, 4)
    node = make_node('type: "Scale" scale_param { axis: 1 num_axes: 2 bias_term: true }', [s, b])
    (y,) = run_node(node, [x])
    np.testing.assert_allclose(y, x * s[..., None] + b[..., None], rtol=1e-5, atol=1e-6)
    gate = rng.randn(2, 3).astype(np.float32)
    (y2,) = run_node(make_node('type: "Scale" scale_param { axis: 0 }', n_in=2), [x, gate])
    np.testing.assert_allclose(y2, x * gate[..., None, None], rtol=1e-6)
    (y3,) = run_node(make_node('type: "Bias"', [b[:, 0]]), [x])
    np.testing.assert_allclose(y3, x + b[:, 0, None, None], rtol=1e-5, atol=1e-6)
    with pytest.raises(ShapeError):
        run_node(make_node('type: "Scale"', [rng.randn(4)]), [x])


def test_lrn_across_and_within(make_node, rng) -> None:
    x = rng.randn(1, 7, 5, 5).astype(np.float32)
    (y,) = run_node(make_node('type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }'),
                    [x])
    sq = np.pad(x.astype(np.float64) ** 2, ((0, 0), (1, 1), (0, 0), (0, 0)))
    win = sq[:, :-2] + sq[:, 1:-1] + sq[:, 2:]
    np.testing.assert_allclose(y, x * (2 + 0.5 / 3 * win) ** -0.75, rtol=1e-5)
    (z,) = run_node(make_node('type: "LRN" lrn_param { local_size: 3 alpha: 0.3 '
                              'norm_region: WITHIN_CHANNEL }'), [x])
    sp = np.pad(x.astype(np.float64) ** 2, ((0, 0), (0, 0), (1, 1), (1, 1)))
    box = sum(sp[:, :, i:i + 5, j:j + 5] for i in range(3) for j in range(3)) / 9
    np.testing.assert_allclose(z, x * (1 + 0.3 * box) ** -0.75, rtol=1e-5)


def test_mvn_and_softmax(make_node, rng) -> None:
    x = rng.randn(2, 3, 4, 4).astype(np.float32)
    (y,) = run_node(make_node('type: "MVN"'), [x])
    d = x - x.mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(y, d / (d.std(axis=(2, 3), keepdims=True) + 1e-9), rtol=1e-5)
    (s,) = run_node(make_node('type: "Softmax" softmax_param { axis: 3 }'), [x])
    e = np.exp(x - x.max(axis=3, keepdims=True))
    np.testing.assert_allclose(s, e / e.sum(axis=3, keepdims=True), rtol=1e-5)


def test_concat_slice_split_eltwise(make_node, rng) -> None:
    a, b = rng.randn(1, 2, 3, 3).astype(np.float32), rng.randn(1, 4, 3, 3).astype(np.float32)
    (c,) = run_node(make_node('type: "Concat"', n_in=2), [a, b])
    np.testing.assert_array_equal(c, np.concatenate([a, b], axis=1))
    parts = run_node(make_node('type: "Slice" slice_param { slice_point: 1 slice_point: 4 }',
                               n_out=3), [c])
    assert [p.shape[1] for p in parts] == [1, 3, 2]
    halves = run_node(make_node('type: "Slice" slice_param { axis: 2 }', n_out=3), [c])
    assert [p.shape[2] for p in halves] == [1, 1, 1]
    copies = run_node(make_node('type: "Split"', n_out=2), [a])
    assert all(np.array_equal(cp, a) for cp in copies)
    a2 = rng.randn(1, 2, 3, 3).astype(np.float32)
    (s,) = run_node(make_node('type: "Eltwise" eltwise_param { coeff: 1 coeff: -0.5 }', n_in=2),
                    [a, a2])
    np.testing.assert_allclose(s, a - 0.5 * a2, rtol=1e-6)
    (m,) = run_node(make_node('type: "Eltwise" eltwise_param { operation: MAX }', n_in=2), [a, a2])
    np.testing.assert_array_equal(m, np.maximum(a, a2))
    (p,) = run_node(make_node('type: "Eltwise" eltwise_param { operation: PROD }', n_in=2),
                    [a, a2])
    np.testing.assert_allclose(p, a * a2, rtol=1e-6)


@pytest.mark.parametrize("text,shape", [
    ("shape { dim: 0 dim: -1 dim: 5 }", (2, 12, 5)),
    ("shape { dim: -1 }", (120,)),
    ("shape { dim: 2 dim: 2 } axis: 1 num_axes: 1", (2, 2, 2, 3, 5)),
    ("shape { dim: 1 } axis: -1 num_axes: 0", (2, 4, 3, 5, 1)),
])
def test_reshape(text: str, shape: tuple[int, ...], make_node, rng) -> None:
    x = rng.randn(2, 4, 3, 5).astype(np.float32)
    (y,) = run_node(make_node(f'type: "Reshape" reshape_param {{ {text} }}'), [x])
    assert y.shape == shape
    np.testing.assert_array_equal(y.ravel(), x.ravel())


def test_flatten_and_crop(make_node, rng) -> None:
    x = rng.randn(2, 4, 3, 5).astype(np.float32)
    (f,) = run_node(make_node('type: "Flatten"'), [x])
    (f2,) = run_node(make_node('type: "Flatten" flatten_param { axis: 2 }'), [x])
    assert f.shape == (2, 60) and f2.shape == (2, 4, 15)
    big, ref = rng.randn(1, 3, 12, 14).astype(np.float32), np.zeros((1, 2, 7, 8), np.float32)
    (c,) = run_node(make_node('type: "Crop" crop_param { axis: 2 offset: 3 offset: 4 }', n_in=2),
                    [big, ref])
    np.testing.assert_array_equal(c, big[:, :, 3:10, 4:12])
    (c1,) = run_node(make_node('type: "Crop" crop_param { axis: 1 offset: 1 }', n_in=2),
                     [big, ref])
    np.testing.assert_array_equal(c1, big[:, 1:3, 1:8, 1:9])
    with pytest.raises(ShapeError):
        run_node(make_node('type: "Crop" crop_param { offset: 9 }', n_in=2), [big, ref])


def test_argmax_shapes_and_ties(make_node) -> None:
    x = np.array([[1.0, 3.0, 3.0, 2.0]], np.float32).reshape(1, 4, 1, 1)
    (a,) = run_node(make_node('type: "ArgMax" argmax_param { axis: 1 }'), [x])
    assert a.shape == (1, 1, 1, 1) and a.ravel()[0] == 2  # tie -> larger index
    (t,) = run_node(make_node('type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }'), [x])
    assert t.shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(t[0, :, :, 0], [[2, 1], [3, 3]])
    (v,) = run_node(make_node('type: "ArgMax" argmax_param { axis: 1 top_k: 3 out_max_val: true '
                              '}'), [x])
    np.testing.assert_array_equal(v.ravel(), [3, 3, 2])


@pytest.mark.parametrize("op,fn", [("SUM", np.sum), ("ASUM", lambda v, axis: np.abs(v).sum(axis)),
                                   ("SUMSQ", lambda v, axis: (v * v).sum(axis)),
                                   ("MEAN", np.mean)])
def test_reduction(op: str, fn, make_node, rng) -> None:
    x = rng.randn(2, 6, 4, 4).astype(np.float32)
    (y,) = run_node(make_node(f'type: "Reduction" reduction_param {{ operation: {op} axis: 2 '
                              f'coeff: 0.5 }}'), [x])
    assert y.shape == (2, 6)
    np.testing.assert_allclose(y, 0.5 * fn(x.astype(np.float64).reshape(2, 6, 16), axis=-1),
                               rtol=1e-5)
    (z,) = run_node(make_node(f'type: "Reduction" reduction_param {{ operation: {op} }}'), [x])
    assert z.shape == ()
