"""Every built-in translator on one-layer nets, against the NumPy reference
executor; parameter combinations beyond the real-Caffe cases."""
import numpy as np
import pytest

from caffe2tf.backend.build import build_keras_model

CONV = [
    ("num_output: 4 kernel_size: 3 pad: 1", (1, 3, 7, 7)),
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1", (2, 3, 9, 8)),
    ("num_output: 4 kernel_size: 3 stride: 2 pad: 1", (1, 3, 10, 10)),  # "same" would pad differently
    ("num_output: 5 kernel_h: 1 kernel_w: 5 pad_h: 0 pad_w: 2 stride_h: 1 stride_w: 3", (1, 3, 6, 11)),
    ("num_output: 6 kernel_size: 3 group: 3 pad: 2 dilation: 2", (1, 6, 9, 9)),
    ("num_output: 8 kernel_size: 3 group: 4 bias_term: false stride: 2", (1, 4, 9, 9)),  # depthwise x2
    ("num_output: 2 kernel_size: 2 stride: 3 pad: 1", (1, 2, 8, 8)),
    ("num_output: 3 kernel_size: 1", (2, 5, 1, 1)),
]


@pytest.mark.parametrize("params,shape", CONV)
def test_convolution(check, params, shape):
    check(f'type: "Convolution" convolution_param {{ {params} }}', [shape])


@pytest.mark.parametrize("params,shape", [
    ("num_output: 3 kernel_size: 4 stride: 2 pad: 1", (1, 2, 5, 6)),
    ("num_output: 2 kernel_size: 1 stride: 2", (1, 3, 4, 4)),           # kernel < stride
    ("num_output: 4 kernel_size: 3 stride: 2 group: 2", (1, 4, 3, 5)),  # grouped
    ("num_output: 3 kernel_size: 4 stride: 2 pad: 1 group: 3 bias_term: false", (2, 3, 4, 4)),
    ("num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0", (1, 2, 4, 4)),
])
def test_deconvolution(check, params, shape):
    check(f'type: "Deconvolution" convolution_param {{ {params} }}', [shape])


@pytest.mark.parametrize("params,shape", [
    ("num_output: 5", (2, 3, 4, 5)),
    ("num_output: 5", (2, 6, 1, 1)),
    ("num_output: 5 axis: 2", (2, 3, 4, 5)),
    ("num_output: 5 axis: 3", (2, 3, 4, 5)),
    ("num_output: 4 transpose: true bias_term: false", (3, 2, 3, 2)),
    ("num_output: 4 axis: 1", (3, 7)),
    ("num_output: 4 axis: -1", (3, 2, 7)),
    ("num_output: 4 axis: 1", (3, 2, 7)),
])
def test_inner_product(check, params, shape):
    check(f'type: "InnerProduct" inner_product_param {{ {params} }}', [shape])


POOL = [
    ("pool: MAX kernel_size: 3 stride: 2", (1, 2, 8, 8)),
    ("pool: MAX kernel_size: 3 stride: 2", (1, 2, 7, 7)),
    ("pool: MAX kernel_size: 3 stride: 2 pad: 1", (1, 2, 10, 11)),
    ("pool: MAX kernel_size: 2 stride: 2 pad: 1", (1, 2, 5, 6)),
    ("pool: MAX kernel_size: 3 stride: 3 pad: 2", (1, 2, 7, 7)),
    ("pool: AVE kernel_size: 3 stride: 2", (1, 2, 8, 8)),
    ("pool: AVE kernel_size: 3 stride: 2 pad: 1", (1, 2, 10, 9)),
    ("pool: AVE kernel_size: 3 stride: 1 pad: 1", (1, 2, 5, 5)),
    ("pool: AVE kernel_h: 4 kernel_w: 2 stride_h: 3 stride_w: 1 pad_h: 2 pad_w: 1", (1, 2, 9, 6)),
    ("pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR", (1, 2, 8, 8)),
    ("pool: MAX kernel_size: 3 stride: 2 ceil_mode: false", (1, 2, 8, 8)),
    ("pool: AVE kernel_size: 6 stride: 6", (1, 3, 12, 12)),
    ("pool: AVE global_pooling: true", (2, 3, 5, 4)),
    ("pool: MAX global_pooling: true", (2, 3, 5, 4)),
]


@pytest.mark.parametrize("params,shape", POOL)
def test_pooling(check, params, shape):
    check(f'type: "Pooling" pooling_param {{ {params} }}', [shape])


def test_max_pool_pads_with_minus_infinity(check):
    x = -np.abs(np.random.default_rng(0).standard_normal((1, 1, 5, 5))).astype(np.float32) - 1
    _, _, (y,) = check('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }',
                       [(1, 1, 5, 5)], inputs=[x])
    assert y[0, 0, 0, 0] == x[0, 0, :2, :2].max() < 0


def test_ave_pool_divisor_counts_pad_not_overhang(check):
    x = np.ones((1, 1, 4, 4), np.float32)
    _, _, (y,) = check('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }',
                       [(1, 1, 4, 4)], inputs=[x])
    # rows [-1,2) [1,4) [3,6): divisors 3, 3 and 2 (clipped to H + pad = 5: pad counts, overhang does
    # not) over 2, 3 and 1 real rows; columns [-1, 2): divisor 3 over 2 real columns
    np.testing.assert_allclose(y[0, 0, :, 0], [4 / 9, 6 / 9, 2 / 6], rtol=1e-6)


ACTIVATIONS = [
    'type: "ReLU"', 'type: "ReLU" relu_param { negative_slope: 0.2 }',
    'type: "ReLU" relu_param { negative_slope: -0.3 }', 'type: "ELU" elu_param { alpha: 0.5 }',
    'type: "Sigmoid"', 'type: "TanH"', 'type: "AbsVal"', 'type: "BNLL"',
    'type: "Power" power_param { power: 3 scale: 0.5 shift: -0.2 }',
    'type: "Power" power_param { power: 0 scale: 2 }', 'type: "Power" power_param { power: 2 scale: 0 shift: 3 }',
    'type: "Exp"', 'type: "Exp" exp_param { base: 3 scale: 0.2 shift: -1 }',
    'type: "Threshold" threshold_param { threshold: 0.3 }', 'type: "Dropout"',
    'type: "Clip" clip_param { min: -0.5 max: 0.7 }', 'type: "Swish" swish_param { beta: 1.5 }',
    'type: "ReLU6"', 'type: "Softmax"', 'type: "Softmax" softmax_param { axis: 2 }',
    'type: "Softmax" softmax_param { axis: -1 }',
]


@pytest.mark.parametrize("text", ACTIVATIONS)
def test_activation(check, text):
    check(text, [(2, 3, 4, 5)])


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3), (2, 3, 4)])
def test_activation_other_ranks(check, shape):
    check('type: "PReLU"', [shape])
    check('type: "Softmax"', [shape])


def test_log_of_positive(check):
    x = np.random.default_rng(0).uniform(0.1, 3, (1, 2, 3, 3)).astype(np.float32)
    check('type: "Log" log_param { base: 2 scale: 1.5 shift: 0.2 }', [x.shape], inputs=[x])
    check('type: "Log"', [x.shape], inputs=[x])


def test_prelu_shared(check):
    check('type: "PReLU" prelu_param { channel_shared: true }', [(2, 3, 4, 5)])


NORM = [
    ('type: "BatchNorm" batch_norm_param { eps: 0.01 }', (2, 3, 4, 5), None),
    ('type: "BatchNorm" batch_norm_param { use_global_stats: false }', (2, 3, 4, 5), None),
    ('type: "BN" bn_param { eps: 0.001 }', (1, 4, 3, 3), None),
    ('type: "Scale"', (2, 3, 4, 5), None),
    ('type: "Scale" scale_param { bias_term: true axis: 2 num_axes: 2 }', (2, 3, 4, 5), None),
    ('type: "Scale" scale_param { axis: 1 num_axes: 2 }', (2, 3, 4, 5), None),
    ('type: "Scale" scale_param { num_axes: 0 }', (2, 3, 4, 5), None),
    ('type: "Bias" bias_param { axis: 1 num_axes: -1 }', (2, 3, 4, 5), None),
    ('type: "Bias"', (2, 3), None),
    ('type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }', (1, 6, 3, 3), None),
    ('type: "LRN" lrn_param { local_size: 5 alpha: 0.3 norm_region: WITHIN_CHANNEL }', (1, 2, 6, 7), None),
    ('type: "MVN"', (2, 3, 4, 5), None),
    ('type: "MVN" mvn_param { across_channels: true eps: 0.001 }', (2, 3, 4, 5), None),
    ('type: "MVN" mvn_param { normalize_variance: false }', (2, 3, 4, 5), None),
]


@pytest.mark.parametrize("text,shape,w", NORM)
def test_normalization(check, text, shape, w):
    if text.startswith('type: "BatchNorm"'):
        rng = np.random.default_rng(3)
        w = [rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1]), np.array([2.5])]
    if text.startswith('type: "BN"'):
        rng = np.random.default_rng(3)
        w = [rng.standard_normal(shape[1]), rng.standard_normal(shape[1]), rng.standard_normal(shape[1]),
             rng.uniform(0.1, 2, shape[1])]
    check(text, [shape], w)


def test_batchnorm_zero_scale_factor(check):
    w = [np.ones(3), np.ones(3), np.zeros(1)]  # s == 0: mean = variance = 0
    _, _, (y,) = check('type: "BatchNorm" batch_norm_param { eps: 1 }', [(1, 3, 2, 2)], w)


@pytest.mark.parametrize("text,shapes", [
    ('type: "Scale" scale_param { axis: 0 }', [(2, 3, 4, 5), (2, 3)]),
    ('type: "Scale" scale_param { axis: 1 bias_term: true }', [(2, 3, 4, 5), (3, 4)]),
    ('type: "Scale" scale_param { axis: 0 }', [(2, 3, 4, 5), (2, 3, 4, 5)]),
    ('type: "Bias" bias_param { axis: 2 }', [(2, 3, 4, 5), (4, 5)]),
])
def test_two_bottom_scale_bias(check, text, shapes):
    check(text, shapes)


@pytest.mark.parametrize("text,shapes", [
    ('type: "Concat"', [(1, 2, 3, 3), (1, 4, 3, 3)]),
    ('type: "Concat" concat_param { axis: 3 }', [(1, 2, 3, 3), (1, 2, 3, 1)]),
    ('type: "Concat" concat_param { axis: 0 }', [(1, 2, 3, 3), (2, 2, 3, 3)]),
    ('type: "Concat" concat_param { axis: 1 }', [(2, 3), (2, 5)]),
    ('type: "Concat"', [(2, 3, 4, 4)]),
    ('type: "Eltwise" eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 }', [(1, 2, 3, 3)] * 3),
    ('type: "Eltwise" eltwise_param { operation: PROD }', [(1, 2, 3, 3)] * 3),
    ('type: "Eltwise" eltwise_param { operation: MAX }', [(2, 5)] * 2),
    ('type: "Eltwise"', [(1, 2, 3, 3)] * 2),
    ('type: "Crop" crop_param { axis: 2 offset: 1 offset: 2 }', [(1, 3, 6, 7), (1, 3, 3, 3)]),
    ('type: "Crop" crop_param { axis: 1 offset: 1 }', [(1, 3, 6, 7), (1, 2, 3, 3)]),
    ('type: "Crop" crop_param { axis: 3 }', [(1, 3, 6, 7), (1, 3, 6, 2)]),
    ('type: "Crop" crop_param { axis: 0 offset: 1 offset: 0 offset: 2 offset: 3 }', [(2, 3, 6, 7), (1, 2, 3, 3)]),
    ('type: "Interp"', [(1, 2, 4, 5), (1, 3, 7, 9)]),
])
def test_multi_input(check, text, shapes):
    check(text, shapes)


@pytest.mark.parametrize("text,shape", [
    ('type: "Flatten"', (2, 3, 4, 5)),
    ('type: "Flatten" flatten_param { axis: 2 }', (2, 3, 4, 5)),
    ('type: "Flatten" flatten_param { axis: 1 end_axis: 2 }', (2, 3, 4, 5)),
    ('type: "Flatten" flatten_param { axis: 0 }', (2, 3, 4, 5)),
    ('type: "Flatten"', (2, 3, 1, 1)),
    ('type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 2 dim: 5 } }', (2, 3, 4, 5)),
    ('type: "Reshape" reshape_param { shape { dim: 0 dim: 2 dim: -1 } }', (2, 6, 5)),
    ('type: "Reshape" reshape_param { shape { dim: 0 dim: 1 dim: 3 dim: -1 } }', (2, 12)),
    ('type: "Reshape" reshape_param { shape { dim: -1 } }', (2, 3, 4, 5)),
    ('type: "Reshape" reshape_param { shape { dim: 2 dim: 2 } axis: 1 num_axes: 1 }', (2, 4, 3, 5)),
])
def test_reshape_family(check, text, shape):
    check(text, [shape])


@pytest.mark.parametrize("text,ntop", [
    ('type: "Slice" slice_param { axis: 1 slice_point: 1 slice_point: 4 }', 3),
    ('type: "Slice" slice_param { axis: 2 }', 2),
    ('type: "Slice" slice_param { axis: 0 }', 2),
    ('type: "Split"', 3),
])
def test_multi_top(check, text, ntop):
    tops = " ".join(f'top: "t{i}"' for i in range(ntop))
    check(f'{text} bottom: "in0" {tops}', [(2, 6, 4, 4)])


@pytest.mark.parametrize("text,shape", [
    ('type: "Interp" interp_param { zoom_factor: 3 }', (1, 2, 4, 5)),
    ('type: "Interp" interp_param { shrink_factor: 2 }', (1, 2, 9, 8)),
    ('type: "Interp" interp_param { height: 1 width: 7 }', (1, 2, 4, 5)),
    ('type: "Interp" interp_param { height: 60 width: 60 }', (1, 2, 1, 1)),
    ('type: "Interp" interp_param { zoom_factor: 2 pad_beg: -2 pad_end: -1 }', (1, 2, 9, 7)),
    ('type: "ArgMax" argmax_param { axis: 1 }', (2, 5, 3, 4)),
    ('type: "ArgMax" argmax_param { axis: 3 top_k: 2 out_max_val: true }', (2, 5, 3, 4)),
    ('type: "ArgMax" argmax_param { top_k: 3 }', (2, 5, 3, 4)),
    ('type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }', (2, 5, 3, 4)),
    ('type: "ArgMax" argmax_param { axis: 1 top_k: 2 }', (2, 6)),
    ('type: "Reduction" reduction_param { operation: SUM axis: 1 }', (2, 5, 3, 4)),
    ('type: "Reduction" reduction_param { operation: ASUM axis: 3 coeff: 2 }', (2, 5, 3, 4)),
    ('type: "Reduction" reduction_param { operation: MEAN axis: -1 }', (2, 5, 3)),
    ('type: "Reduction" reduction_param { operation: SUMSQ axis: 2 }', (2, 5, 3, 4)),
])
def test_resize_and_reductions(check, text, shape):
    check(text, [shape])


def test_argmax_ties_go_to_larger_index(check):
    x = np.zeros((1, 4, 1, 2), np.float32)
    x[0, 1, 0, 0] = x[0, 3, 0, 0] = 1
    _, _, (y,) = check('type: "ArgMax" argmax_param { axis: 1 }', [x.shape], inputs=[x])
    assert y[0, 0, 0, 0] == 3 and y[0, 0, 0, 1] == 3


def test_input_layout_nchw(check):
    result, _, _ = check('type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 }', [(1, 3, 5, 6)],
                         input_layout="nchw")
    assert tuple(result.model.inputs[0].shape) == (None, 3, 5, 6)


def test_unknown_batch_size_runs(graph_of):
    g = graph_of('type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 pad: 1 }', [(1, 3, 5, 5)])
    model = build_keras_model(g).model
    assert model(np.zeros((4, 5, 5, 3), np.float32)).shape == (4, 5, 5, 2)


@pytest.mark.parametrize("order,shape", [((0, 2, 3, 1), (2, 3, 4, 5)), ((0, 3, 1, 2), (2, 3, 4, 5)),
                                         ((0, 2, 1), (2, 3, 4)), ((0, 1, 2, 3), (1, 2, 3, 4))])
def test_permute(graph_of, run_keras, order, shape):
    """SSD's Permute (the reference executor has no kernel for it): NumPy transpose."""
    text = 'type: "Permute" permute_param { ' + " ".join(f"order: {o}" for o in order) + " }"
    g = graph_of(text, [shape])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    got = run_keras(build_keras_model(g, outputs="all"), g, [x])["out"]
    np.testing.assert_array_equal(got, np.transpose(x, order))
