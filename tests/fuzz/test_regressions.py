"""Nets the fuzzers found wrong, each fixed; kept as plain tests (Keras vs the NumPy executor
at the README's 1e-5 of max|ref|, as in ``test_nets``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_nets import TOL, keras_outputs, rel_err

from caffe2tf.frontend.caffemodel_writer import write_caffemodel
from caffe2tf.frontend.reader import load_net
from caffe2tf.verification.reference import run_graph


def _check(tmp_path: Path, inputs: dict[str, tuple[int, ...]], body: str,
           weights: list[tuple[str, str, list[np.ndarray]]] = ()) -> None:
    head = "".join(f'layer {{ name: "in_{k}" type: "Input" top: "{k}" input_param {{ shape {{ '
                   + " ".join(f"dim: {d}" for d in s) + " } } }\n" for k, s in inputs.items())
    proto = tmp_path / "net.prototxt"
    proto.write_text(head + body)
    model = None
    if weights:
        model = tmp_path / "w.caffemodel"
        write_caffemodel(model, list(weights))
    graph = load_net(proto, model)
    rng = np.random.default_rng(0)
    feeds = {k: rng.uniform(-2, 2, s).astype(np.float32) for k, s in inputs.items()}
    ref = run_graph(graph, feeds)
    got = keras_outputs(graph, feeds)
    for v in graph.outputs:
        assert rel_err(got[v], ref[v]) <= TOL, (v, rel_err(got[v], ref[v]))


def test_dropout_scale_train_false_scales_at_test_time(tmp_path: Path) -> None:
    """The forks' ``scale_train: false``: TEST output is x * (1 - ratio); the translator passed x."""
    _check(tmp_path, {"x": (2, 5, 9)}, 'layer { name: "d" type: "Dropout" bottom: "x" top: "x" '
                                       "dropout_param { dropout_ratio: 0.25 scale_train: false } }\n")


@pytest.mark.parametrize("ltype", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("group", [1, 2])
def test_strided_and_dilated_convolution(tmp_path: Path, ltype: str, group: int) -> None:
    """Keras refuses strides > 1 with dilation_rate > 1 (was a ConversionError wrapping its ValueError)."""
    c, o = 2, 4
    w = np.random.default_rng(1).standard_normal((o, c // group, 2, 3) if ltype == "Convolution"
                                                 else (c, o // group, 2, 3)).astype(np.float32)
    b = np.random.default_rng(2).standard_normal(o).astype(np.float32)
    _check(tmp_path, {"x": (1, c, 9, 10)},
           f'layer {{ name: "c" type: "{ltype}" bottom: "x" top: "y" convolution_param {{ num_output: {o} '
           f"group: {group} kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 2 dilation: 2 pad: 1 }} }}\n",
           [("c", ltype, [w, b])])


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("group", [1, 5])
def test_dilated_deconvolution(tmp_path: Path, group: int, stride: int) -> None:
    """Two bugs. (1) TF's CPU Conv2DBackpropInput refuses dilation > 1 at call time on some
    CPUs, stride 1 included (CI's fuzz run, an AVX-512 machine: InvalidArgumentError from
    CaffeGroupedDeconv2D.call); the dilation now goes into the kernel for every dilated
    Deconvolution, so no built layer may carry a dilation_rate > 1, whatever this CPU
    accepts. (2) CaffeGroupedDeconv2D.compute_output_shape used Caffe's length where the
    crop was computed from conv_transpose's longer "valid" one (kernel extent < stride:
    a 1-row kernel at stride 2 gave 10 rows for Caffe's 11)."""
    from caffe2tf.backend.build import build_keras_model

    w = np.random.default_rng(4).standard_normal((5, 5 // group, 1, 3)).astype(np.float32)
    body = (f'layer {{ name: "c" type: "Deconvolution" bottom: "x" top: "y" convolution_param {{ num_output: 5 '
            f"bias_term: false group: {group} kernel_h: 1 kernel_w: 3 stride: {stride} dilation: 1 dilation: 2 }} }}\n")
    _check(tmp_path, {"x": (1, 5, 6, 9)}, body, [("c", "Deconvolution", [w])])
    model = build_keras_model(load_net(tmp_path / "net.prototxt", tmp_path / "w.caffemodel")).model
    dilations = {layer.name: tuple(layer.dilation_rate) for layer in model.layers if hasattr(layer, "dilation_rate")}
    assert dilations and all(d == (1, 1) for d in dilations.values()), dilations


def test_depthwise_convolution_with_unequal_strides(tmp_path: Path) -> None:
    """TF's CPU DepthwiseConv2dNative fails *at call time* on unequal strides (an InvalidArgumentError
    escaped the forward pass); such a layer is a grouped Conv2D now."""
    w = np.random.default_rng(3).standard_normal((5, 1, 1, 1)).astype(np.float32)
    _check(tmp_path, {"x": (2, 5, 4, 4)},
           'layer { name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 5 '
           "group: 5 kernel_size: 1 stride_h: 1 stride_w: 3 bias_term: false } }\n", [("c", "Convolution", [w])])


def test_reduction_of_a_5d_blob_to_4d(tmp_path: Path) -> None:
    """A 4-D Reduction result (of a 5-D bottom) must be NHWC in Keras; it was left in Caffe order."""
    _check(tmp_path, {"x": (1, 4, 3)},
           'layer { name: "r" type: "Reshape" bottom: "x" top: "r" reshape_param { shape { dim: 1 dim: -1 } '
           "axis: 2 num_axes: 0 } }\n"
           'layer { name: "s" type: "Reduction" bottom: "r" top: "s" reduction_param { operation: ASUM axis: -1 } }\n')


def test_inner_product_of_a_5d_blob_from_axis_3(tmp_path: Path) -> None:
    """A 5-D bottom flattened from axis 3 is a 4-D (NHWC in Keras) value: Dense ran over its
    channel axis (a ConversionError wrapping Keras' weight-shape ValueError)."""
    w = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    _check(tmp_path, {"x": (1, 2, 3, 2, 2)},
           'layer { name: "f" type: "InnerProduct" bottom: "x" top: "y" '
           "inner_product_param { num_output: 3 axis: 3 } }\n", [("f", "InnerProduct", [w, np.zeros(3, np.float32)])])
