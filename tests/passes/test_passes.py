"""Folding BatchNorm / BN / Scale / Bias into convs must not change results beyond float32 rounding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.ir import Graph, Node, Value
from caffe2tf.passes import run_passes
from caffe2tf.passes.fold_affine import affine_coefficients, fold_affine_into_linear
from caffe2tf.frontend.reader import load_net
from caffe2tf.verification.reference.executor import run_graph

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mini_pspnet"


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


def _node(name, ltype, inputs, outputs, text="", weights=()):
    p = text_format.Parse(text, caffe_pb2.LayerParameter(name=name, type=ltype))
    return Node(name=name, type=ltype, inputs=tuple(inputs), outputs=tuple(outputs), param=p,
                weights=tuple(np.asarray(w, np.float32) for w in weights))


def _conv_affine_graph(ltype: str, text: str, weights, conv_type="Convolution", group=1, extra_consumer=False):
    rng = np.random.default_rng(0)
    c_in, c_out = 4, 6
    if conv_type == "Convolution":
        W = rng.normal(size=(c_out, c_in // group, 3, 3))
        out_shape = (2, c_out, 5, 5)
    else:
        W = rng.normal(size=(c_in, c_out // group, 3, 3))
        out_shape = (2, c_out, 11, 11)
    conv = _node("conv", conv_type, ["data"], ["conv"],
                 f"convolution_param {{ num_output: {c_out} kernel_size: 3 pad: 1 group: {group} "
                 f"stride: {1 if conv_type == 'Convolution' else 2} bias_term: true }}",
                 [W, rng.normal(size=c_out)])
    aff = _node("aff", ltype, ["conv"], ["conv@aff"], text, weights)
    nodes = [_node("data", "Input", [], ["data"]), conv, aff]
    values = {"data": Value("data", "data", (2, c_in, 5, 5)), "conv": Value("conv", "conv", out_shape),
              "conv@aff": Value("conv@aff", "conv", out_shape)}
    outputs = ("conv@aff",)
    if extra_consumer:
        nodes.append(_node("relu", "ReLU", ["conv"], ["r"]))
        values["r"] = Value("r", "r", out_shape)
        outputs += ("r",)
    return Graph("t", nodes, values, ("data",), outputs)


C = 6
_rng = np.random.default_rng(1)
AFFINES = {
    "BatchNorm_s2": ("BatchNorm", "batch_norm_param { eps: 0.001 }",
                     [_rng.normal(size=C), _rng.uniform(0.5, 2, C), [2.0]]),
    "BatchNorm_s0": ("BatchNorm", "", [_rng.normal(size=C), _rng.uniform(0.5, 2, C), [0.0]]),
    "BN": ("BN", "bn_param { eps: 1e-4 }",
           [_rng.normal(size=C), _rng.normal(size=C), _rng.normal(size=C), _rng.uniform(0.1, 2, C)]),
    "Scale": ("Scale", "scale_param { bias_term: true }", [_rng.normal(size=C), _rng.normal(size=C)]),
    "Scale_nobias": ("Scale", "", [_rng.normal(size=C)]),
    "Bias": ("Bias", "", [_rng.normal(size=C)]),
}


@pytest.mark.parametrize("conv_type,group", [("Convolution", 1), ("Convolution", 2), ("Deconvolution", 2)])
@pytest.mark.parametrize("key", sorted(AFFINES))
def test_fold_matches_unfolded(key, conv_type, group):
    ltype, text, weights = AFFINES[key]
    g = _conv_affine_graph(ltype, text, weights, conv_type, group)
    folded = fold_affine_into_linear(g)
    assert [n.type for n in folded.nodes] == ["Input", conv_type]
    assert folded.nodes[1].folded == ("aff",)
    assert folded.nodes[1].outputs == ("conv@aff",)
    x = {"data": np.random.default_rng(2).normal(size=(2, 4, 5, 5)).astype(np.float32)}
    ref = run_graph(g, x)["conv@aff"]
    got = run_graph(folded, x)["conv@aff"]
    assert _rel(got, ref) < 1e-5


def test_no_fold_when_intermediate_has_other_consumer():
    ltype, text, weights = AFFINES["BN"]
    g = _conv_affine_graph(ltype, text, weights, extra_consumer=True)
    folded = fold_affine_into_linear(g)
    assert [n.name for n in folded.nodes] == [n.name for n in g.nodes]


def test_batchnorm_zero_scale_factor_means_zero_statistics():
    node = _node("bn", "BatchNorm", ["x"], ["y"], "", [np.ones(3), np.ones(3), [0.0]])
    a, b = affine_coefficients(node, 3)
    np.testing.assert_allclose(a, 1 / np.sqrt(np.float32(1e-5)), rtol=1e-6)
    np.testing.assert_allclose(b, 0.0)


def test_mini_pspnet_folded_equals_unfolded():
    g = load_net(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel")
    folded = run_passes(g)
    assert len(folded.nodes) == len(g.nodes) - sum(n.type == "BN" for n in g.nodes)
    x = {"data": np.random.default_rng(3).normal(scale=50, size=(1, 3, 113, 113)).astype(np.float32)}
    ref, got = run_graph(g, x), run_graph(folded, x)
    compared = 0
    for vid in got:
        if vid in ref:
            assert _rel(got[vid], ref[vid]) < 1e-5, vid
            compared += 1
    assert compared >= 15


def _segnet_bn_graph(mode: str):
    rng = np.random.default_rng(4)
    g = _conv_affine_graph("BN", f"bn_param {{ {mode} }}", [rng.normal(size=C), rng.normal(size=C)])
    g.nodes[2] = g.nodes[2].with_(reading="segnet")
    return g


def test_segnet_bn_inference_folds_as_affine():
    g = _segnet_bn_graph("bn_mode: INFERENCE")
    a, b = affine_coefficients(g.nodes[2], C)
    np.testing.assert_array_equal(a, g.nodes[2].weights[0].astype(np.float64))  # y = scale * x + shift
    np.testing.assert_array_equal(b, g.nodes[2].weights[1].astype(np.float64))
    folded = fold_affine_into_linear(g)
    assert [n.type for n in folded.nodes] == ["Input", "Convolution"]
    x = {"data": np.random.default_rng(5).normal(size=(2, 4, 5, 5)).astype(np.float32)}
    # float32 rounding of W*a + b versus (W x + b0) * a + b: well below the 1e-5 one-semantic tolerance
    assert _rel(run_graph(folded, x)["conv@aff"], run_graph(g, x)["conv@aff"]) < 1e-5


@pytest.mark.parametrize("mode", ["", "bn_mode: LEARN"])
def test_segnet_bn_learn_mode_is_never_folded(mode):
    """LEARN (the default) normalises with batch statistics, even at inference: not affine."""
    g = _segnet_bn_graph(mode)
    assert affine_coefficients(g.nodes[2], C) is None
    assert [n.name for n in fold_affine_into_linear(g).nodes] == [n.name for n in g.nodes]
