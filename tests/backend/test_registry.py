"""The translator registry: decorator, duplicates, unsupported types, plug-ins."""
import textwrap

import pytest

from caffe2tf.ir import Graph, Node, Value
from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.errors import Caffe2TFError, UnsupportedLayerError
from caffe2tf.backend import registry
from caffe2tf.backend.registry import RegistrationError, translator

REQUIRED = ["Input", "Convolution", "Deconvolution", "InnerProduct", "Pooling", "ReLU", "PReLU", "ELU", "Sigmoid",
            "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log", "Threshold", "Dropout", "BatchNorm", "Scale", "Bias",
            "BN", "LRN", "MVN", "Concat", "Slice", "Split", "Eltwise", "Softmax", "Flatten", "Reshape", "Crop",
            "Interp", "ArgMax", "Reduction"]


@pytest.fixture(autouse=True)
def _clean_user_translators():
    before = registry.TRANSLATORS.users()
    yield
    registry.TRANSLATORS.restore_users(before)


def test_every_required_type_is_supported():
    assert set(REQUIRED) <= set(registry.supported_types())
    for t in REQUIRED:
        info = registry.describe(t)
        assert info["module"].startswith("caffe2tf.backend.") and info["summary"], t


def test_duplicate_refused_unless_override():
    with pytest.raises(RegistrationError, match="ReLU.*override=True"):
        translator("ReLU")(lambda node, inputs, ctx: inputs)

    def mine(node, inputs, ctx):
        return inputs
    translator("ReLU", override=True)(mine)
    assert registry.get_translator("ReLU") is mine
    registry.unregister("ReLU")
    assert registry.get_translator("ReLU").__module__ == "caffe2tf.backend.translators.activations"

    translator("Brand_New")(mine)
    with pytest.raises(RegistrationError):
        translator("Brand_New")(mine)


def _graph(types):
    values = {"x": Value("x", "x", (1, 2, 3, 3))}
    nodes = [Node("x", "Input", (), ("x",), caffe_pb2.LayerParameter(name="x", type="Input"))]
    prev = "x"
    for i, t in enumerate(types):
        values[f"v{i}"] = Value(f"v{i}", f"v{i}", (1, 2, 3, 3))
        nodes.append(Node(f"layer{i}", t, (prev,), (f"v{i}",), caffe_pb2.LayerParameter(name=f"layer{i}", type=t)))
        prev = f"v{i}"
    return Graph("g", nodes, values, ("x",), (prev,), source="net.prototxt")


def test_check_supported_lists_every_unsupported_type_once():
    g = _graph(["ReLU", "Foo", "Bar", "Foo", "ReLU"])
    with pytest.raises(UnsupportedLayerError) as info:
        registry.check_supported(g)
    msg = str(info.value)
    assert "2 unsupported layer types" in msg and msg.count("Foo (") == 1
    assert "'layer1', 'layer3'" in msg and "'layer2'" in msg and "--plugin" in msg
    assert "\n" not in msg and msg.startswith("net.prototxt")
    registry.check_supported(_graph(["ReLU", "Sigmoid"]))


def test_load_plugin_registers_and_reports(tmp_path):
    plugin = tmp_path / "my_layers.py"
    plugin.write_text(textwrap.dedent('''
        import keras
        from caffe2tf.backend import translator

        @translator("Foo")
        def foo(node, inputs, ctx):
            """Identity."""
            return [keras.layers.Identity(name=ctx.layer_name(node))(inputs[0])]
    '''))
    assert registry.load_plugin(plugin) == ["Foo"]
    assert registry.is_supported("Foo")
    registry.check_supported(_graph(["Foo"]))


def test_load_plugin_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(Caffe2TFError, match="failed to import: RuntimeError: boom"):
        registry.load_plugin(bad)
    with pytest.raises(Caffe2TFError, match="not a .py file"):
        registry.load_plugin(tmp_path / "missing.py")
    dup = tmp_path / "dup.py"
    dup.write_text("from caffe2tf.backend import translator\ntranslator('ReLU')(lambda n, i, c: i)\n")
    with pytest.raises(RegistrationError, match="already registered"):
        registry.load_plugin(dup)


def test_declared_builtin_types_equal_the_loaded_registry():
    """What `inspect` reads from the translator sources (without importing TensorFlow)
    is exactly what the built-in modules register when imported."""
    assert registry.builtin_types_declared() == set(registry.builtin_translators())
