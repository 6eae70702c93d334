"""The plug-in example of docs/adding_a_layer.md works as written."""
import re
from pathlib import Path

import numpy as np
import pytest

from caffe2tf.backend.build import build_keras_model
from caffe2tf.backend import registry

DOC = Path(__file__).parents[2] / "docs" / "adding_a_layer.md"


@pytest.fixture
def plugin_file(tmp_path):
    code = re.search(r"```python\n(# my_layers.py\n.*?)```", DOC.read_text(), re.S).group(1)
    path = tmp_path / "my_layers.py"
    path.write_text(code)
    yield path
    from caffe2tf.frontend import shapes
    from caffe2tf.verification.reference.registry import KERNELS
    for t in ("Mish", "ScaledTanH"):
        registry.unregister(t)
        shapes.SHAPE_RULES.unregister(t)
        KERNELS.unregister(t)


def test_doc_plugin_converts_custom_layers(plugin_file, graph_of, run_keras):
    assert registry.load_plugin(plugin_file) == ["Mish", "ScaledTanH"]
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 3)).astype(np.float32)
    g = graph_of('type: "Mish"', [x.shape], weights=[])
    y = run_keras(build_keras_model(g, outputs="all"), g, [x])["out"]
    np.testing.assert_allclose(y, x * np.tanh(np.log1p(np.exp(x))), rtol=1e-5, atol=1e-6)
    g = graph_of('type: "ScaledTanH"', [x.shape], weights=[np.array([2.5], np.float32)])
    y = run_keras(build_keras_model(g, outputs="all"), g, [x])["out"]
    np.testing.assert_allclose(y, 2.5 * np.tanh(x), rtol=1e-6, atol=1e-6)


def test_doc_plugin_registers_shape_rule_translator_and_kernel_from_one_file(plugin_file, graph_of, run_keras):
    from caffe2tf.frontend import shapes
    from caffe2tf.verification.reference import get_kernel, run_graph
    from caffe2tf.verification.reference.registry import KERNELS

    registry.load_plugin(plugin_file)
    assert shapes.SHAPE_RULES.is_user("Mish") and registry.TRANSLATORS.is_user("Mish") and KERNELS.is_user("Mish")
    assert get_kernel("Mish") is not None and get_kernel("ScaledTanH") is None  # the kernel is optional
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 3)).astype(np.float32)
    g = graph_of('type: "Mish"', [x.shape], weights=[])
    keras_y = run_keras(build_keras_model(g, outputs="all"), g, [x])["out"]
    ref_y = run_graph(g, {"in0": x})["out"]
    # two float32 evaluations of x*tanh(softplus(x)) (TF's ops vs NumPy in float64 rounded): a few ulps
    np.testing.assert_allclose(keras_y, ref_y, rtol=1e-5, atol=1e-6)


def test_unregistered_types_are_refused_with_plugin_hint(graph_of):
    from caffe2tf.ir import Graph, Node, Value
    from caffe2tf.caffe_proto import caffe_pb2
    from caffe2tf.errors import UnsupportedLayerError

    g = Graph("g", [Node("x", "Input", (), ("x",), caffe_pb2.LayerParameter()),
                    Node("m", "Mish", ("x",), ("y",), caffe_pb2.LayerParameter(name="m", type="Mish"))],
              {"x": Value("x", "x", (1, 2)), "y": Value("y", "y", (1, 2))}, ("x",), ("y",))
    with pytest.raises(UnsupportedLayerError, match="Mish .*--plugin"):
        build_keras_model(g)
