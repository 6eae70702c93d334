"""build_keras_model: value/layer maps, output modes, input layout, errors, and
.keras / SavedModel round trips of a net using every custom layer."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from caffe2tf.frontend import shapes
from caffe2tf.backend.build import build_keras_model
from caffe2tf.ir import Graph
from caffe2tf.frontend.reader import load_net
from caffe2tf.errors import ConversionError, UnsupportedLayerError
from caffe2tf.backend import layers as custom_layers
from caffe2tf.backend import layout, registry
from caffe2tf.verification.reference import run_graph
from tolerances import SAME_GRAPH_REL, assert_same_graph

EVERYTHING = """
name: "everything"
input: "data"
input_shape { dim: 2 dim: 4 dim: 9 dim: 9 }
input: "gate"
input_shape { dim: 2 dim: 6 }
layer { name: "conv/1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "conv/1/bn" type: "BN" bottom: "c1" top: "c1" bn_param { eps: 0.001 } }
layer { name: "norm" type: "BatchNorm" bottom: "c1" top: "c1" batch_norm_param { use_global_stats: true } }
layer { name: "gated" type: "Scale" bottom: "c1" bottom: "gate" top: "g" scale_param { axis: 0 } }
layer { name: "shifted" type: "Bias" bottom: "g" bottom: "gate" top: "g2" bias_param { axis: 0 } }
layer { name: "relu" type: "ReLU" bottom: "g2" top: "g2" }
layer { name: "apool" type: "Pooling" bottom: "g2" top: "ap" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "mpool" type: "Pooling" bottom: "g2" top: "mp" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 2 } }
layer { name: "up" type: "Interp" bottom: "ap" top: "up" interp_param { height: 9 width: 9 } }
layer { name: "lrn" type: "LRN" bottom: "up" top: "lrn" lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 } }
layer { name: "mvn" type: "MVN" bottom: "lrn" top: "mvn" }
layer { name: "pow" type: "Power" bottom: "mvn" top: "pow" power_param { power: 2 shift: 1 } }
layer { name: "mix" type: "Eltwise" bottom: "pow" bottom: "g2" top: "mix" eltwise_param { coeff: 0.5 coeff: -1 } }
layer { name: "split" type: "Slice" bottom: "mix" top: "s0" top: "s1" slice_param { slice_point: 2 } }
layer { name: "deconv" type: "Deconvolution" bottom: "s1" top: "dc"
        convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 2 } }
layer { name: "am" type: "ArgMax" bottom: "dc" top: "am" argmax_param { axis: 1 } }
layer { name: "red" type: "Reduction" bottom: "s0" top: "red" reduction_param { operation: SUMSQ axis: 2 } }
layer { name: "flat_all" type: "Flatten" bottom: "mp" top: "flat_all" flatten_param { axis: 0 } }
layer { name: "fc" type: "InnerProduct" bottom: "mp" top: "fc" inner_product_param { num_output: 3 } }
"""


def random_weights(graph: Graph, seed: int = 0) -> Graph:
    """The graph with random canonical weights (variances positive) on every layer that takes blobs."""
    rng = np.random.default_rng(seed)
    for i, node in enumerate(graph.nodes):
        if node.type == "Input":
            continue
        blobs = shapes.infer(node.param, graph.input_shapes(node)).blobs
        ws = [rng.standard_normal(s).astype(np.float32) for s in blobs]
        if node.type == "BN":
            ws[3] = np.abs(ws[3]) + 0.1
        if node.type == "BatchNorm":
            ws[1], ws[2] = np.abs(ws[1]) + 0.1, np.array([2.0], np.float32)
        graph.nodes[i] = node.with_(weights=tuple(ws))
    return graph


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "everything.prototxt"
    path.write_text(EVERYTHING)
    graph = random_weights(load_net(path, allow_missing_weights=True))
    rng = np.random.default_rng(1)
    feeds = {"data": rng.standard_normal((2, 4, 9, 9)).astype(np.float32),
             "gate": rng.uniform(0.5, 1.5, (2, 6)).astype(np.float32)}
    return graph, feeds


def _keras_feeds(graph, feeds, input_layout="nhwc"):
    return [layout.nchw_to_keras(feeds[graph.values[v].blob]) if input_layout == "nhwc"
            else feeds[graph.values[v].blob] for v in graph.inputs]


def test_all_outputs_match_reference_executor(everything):
    graph, feeds = everything
    result = build_keras_model(graph, outputs="all")
    out = result.model(_keras_feeds(graph, feeds))
    want = run_graph(graph, feeds)
    assert set(out) == {v for v in graph.values if v not in graph.inputs}
    for vid, t in out.items():
        ref = want[vid]
        got = layout.keras_to_nchw(np.asarray(t))
        assert got.shape == ref.shape, vid
        assert np.max(np.abs(got - ref)) <= 1e-5 * max(np.max(np.abs(ref)), 1e-6), vid


def test_maps_from_caffe_to_keras(everything):
    graph, _ = everything
    result = build_keras_model(graph, outputs="all")
    names = {layer.name for layer in result.model.layers}
    assert set(result.value_to_tensor_name) == set(graph.values)
    assert set(result.value_to_tensor_name.values()) <= names
    assert result.keras_layer_for_node["conv/1"] == ["conv_1"]  # '/' is not allowed in Keras names
    assert result.value_to_tensor_name["c1@conv/1/bn"] == "conv_1_bn"
    assert result.keras_layer_for_node["split"] == ["split_0", "split_1"]
    assert {k for ks in result.keras_layer_for_node.values() for k in ks} == names
    assert result.caffe_layer_for_keras["conv_1_bn"] == "conv/1/bn"


def test_graph_outputs_and_nchw_input_layout(everything):
    graph, feeds = everything
    full = build_keras_model(graph, outputs="all")
    want = full.model(_keras_feeds(graph, feeds))
    result = build_keras_model(graph, input_layout="nchw")
    assert [tuple(t.shape[1:]) for t in result.model.inputs] == [(4, 9, 9), (6,)]
    outs = result.model(_keras_feeds(graph, feeds, "nchw"))
    assert len(outs) == len(graph.outputs)
    for vid, got in zip(graph.outputs, outs):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want[vid]), rtol=1e-6, atol=1e-6)


def test_unsupported_types_listed_before_building(everything, tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text(EVERYTHING + 'layer { name: "w1" type: "Weird" bottom: "fc" top: "w1" }\n'
                                 'layer { name: "w2" type: "Weird" bottom: "w1" top: "w2" }\n'
                                 'layer { name: "o1" type: "Odd" bottom: "w2" top: "o1" }\n')
    graph = load_net(path, allow_missing_weights=True)
    with pytest.raises(UnsupportedLayerError, match=r"2 unsupported layer types: Odd \(1 layer: 'o1'\); "
                                                    r"Weird \(2 layers: 'w1', 'w2'\)"):
        build_keras_model(graph)


def test_translator_failure_names_layer(everything):
    graph, _ = everything
    i = next(i for i, n in enumerate(graph.nodes) if n.name == "fc")
    broken = Graph(graph.name, list(graph.nodes), graph.values, graph.inputs, graph.outputs, source="x.prototxt")
    broken.nodes[i] = broken.nodes[i].with_(weights=(np.zeros((3, 5), np.float32),) * 2)
    with pytest.raises(ConversionError, match=r"layer 'fc': converting this InnerProduct layer failed"):
        build_keras_model(broken)
    broken.nodes[i] = broken.nodes[i].with_(weights=())
    with pytest.raises(ConversionError, match=r"layer 'fc'.*needs 2 weight blob"):
        build_keras_model(broken)


def test_translator_failure_shows_input_shapes(everything):
    graph, _ = everything
    i = next(i for i, n in enumerate(graph.nodes) if n.name == "fc")
    broken = Graph(graph.name, list(graph.nodes), graph.values, graph.inputs, graph.outputs, source="x.prototxt")
    broken.nodes[i] = broken.nodes[i].with_(weights=(np.zeros((3, 5), np.float32),) * 2)
    want = graph.values[graph.nodes[i].inputs[0]].shape
    with pytest.raises(ConversionError) as info:
        build_keras_model(broken)
    assert info.value.input_shapes == [tuple(want)]
    assert "[input shapes: (" + ", ".join(str(d) for d in want) + ")]" in str(info.value)


def test_plugin_translator_used_in_build(everything, tmp_path):
    graph, feeds = everything
    plugin = tmp_path / "double.py"
    plugin.write_text(textwrap.dedent('''
        import keras
        from caffe2tf.backend import translator

        @translator("ReLU", override=True)
        def doubled_relu(node, inputs, ctx):
            return [keras.layers.Rescaling(2.0, name=ctx.layer_name(node))(keras.layers.ReLU(
                name=ctx.layer_name(node, "_relu"))(inputs[0]))]
    '''))
    try:
        assert registry.load_plugin(plugin) == ["ReLU"]
        result = build_keras_model(graph, outputs="all")
        assert result.keras_layer_for_node["relu"] == ["relu", "relu_relu"]
        out = result.model(_keras_feeds(graph, feeds))
        g2 = layout.keras_to_nchw(np.asarray(out["g2"]))
        np.testing.assert_allclose(np.asarray(layout.keras_to_nchw(np.asarray(out["g2@relu"]))),
                                   2 * np.maximum(g2, 0), rtol=1e-6)
    finally:
        registry.unregister("ReLU")


def _reload_in_a_fresh_process(keras_file, model, x, tmp_path) -> None:  # noqa: ANN001
    """Load ``keras_file`` in a new process that imports only ``caffe2tf.backend.layers``
    and check it computes what ``model`` does on ``x``."""
    np.savez(tmp_path / "x.npz", *x)
    np.savez(tmp_path / "want.npz", *[np.asarray(t) for t in model(x)])
    script = textwrap.dedent(f'''
        import sys, numpy as np, keras
        import caffe2tf.backend.layers
        assert "caffe2tf.backend.build" not in sys.modules
        m = keras.models.load_model(r"{keras_file}")
        xs = np.load(r"{tmp_path / 'x.npz'}"); want = np.load(r"{tmp_path / 'want.npz'}")
        got = m([xs[k] for k in sorted(xs.files)])
        for g, k in zip(got, sorted(want.files)):
            # another process, same graph: its own thread pool may sum in another order
            err = np.max(np.abs(np.asarray(g, np.float64) - want[k])) / max(np.max(np.abs(want[k])), 1e-6)
            assert err <= {SAME_GRAPH_REL}, (k, err)
        print("ok", len(got))
    ''')
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-3000:]


def test_keras_file_round_trip_with_only_custom_layers(everything, tmp_path):
    graph, feeds = everything
    model = build_keras_model(graph).model
    used = {type(layer).__name__ for layer in model.layers if type(layer).__module__.startswith(custom_layers.__name__ + ".")}
    assert used == {"CaffeAffine", "CaffeBroadcastOp", "CaffePooling2D", "CaffeInterp", "CaffeLRN",
                    "CaffeMeanVarianceNorm", "CaffeElementwise", "CaffeWeightedSum", "CaffeSlice",
                    "CaffeGroupedDeconv2D", "CaffeArgMax", "CaffeReduction", "CaffeReshape"}
    path = tmp_path / "m.keras"
    model.save(path)
    _reload_in_a_fresh_process(path, model, _keras_feeds(graph, feeds), tmp_path)


def test_custom_layer_configs_round_trip(everything):
    graph, _ = everything
    model = build_keras_model(graph).model
    for layer in model.layers:
        if type(layer).__module__.startswith(custom_layers.__name__ + "."):
            clone = type(layer).from_config(layer.get_config())
            assert clone.get_config() == layer.get_config()
            ser = keras.saving.serialize_keras_object(layer)
            assert ser["registered_name"] == f"caffe2tf>{type(layer).__name__}"


def test_custom_layers_compute_their_output_shape(everything):
    """Every caffe2tf layer's ``compute_output_shape`` gives the shape its ``call`` makes."""
    graph, _ = everything
    model = build_keras_model(graph).model
    checked = set()
    for layer in model.layers:
        if not type(layer).__module__.startswith(custom_layers.__name__ + "."):
            continue
        ins = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        shapes = [tuple(t.shape) for t in ins]
        got = layer.compute_output_shape(shapes if len(shapes) > 1 else shapes[0])
        assert tuple(got) == tuple(layer.output.shape), (layer.name, got, layer.output.shape)
        checked.add(type(layer).__name__)
    assert {"CaffeSlice", "CaffeReshape", "CaffeArgMax", "CaffeReduction", "CaffeGroupedDeconv2D"} <= checked


def test_keras_file_saved_before_the_layer_modules_moved_still_loads(everything, tmp_path):
    """A ``.keras`` written when the layers lived in ``caffe2tf.layer_mappings.custom_layers``
    (its config names that module) loads with only ``caffe2tf.backend.layers`` imported:
    layers are found by their registered name ``caffe2tf>ClassName``."""
    import json
    import zipfile

    graph, feeds = everything
    model = build_keras_model(graph).model
    new = tmp_path / "new.keras"
    model.save(new)
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(new) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                text = data.decode()
                for module in custom_layers.LAYER_MODULES:
                    text = text.replace(f'"{module}"', '"caffe2tf.layer_mappings.custom_layers"')
                assert "caffe2tf.layer_mappings.custom_layers" in text
                data = json.dumps(json.loads(text)).encode()
            dst.writestr(item, data)
    _reload_in_a_fresh_process(old, model, _keras_feeds(graph, feeds), tmp_path)


def test_saved_model_export_round_trip(tmp_path):
    import tensorflow as tf

    text = EVERYTHING.split('layer { name: "flat_all"')[0]  # fixed-batch Flatten(axis 0) left out
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    graph = random_weights(load_net(path, allow_missing_weights=True))
    model = build_keras_model(graph).model
    rng = np.random.default_rng(2)
    x = [rng.standard_normal((2, 9, 9, 4)).astype(np.float32), rng.uniform(0.5, 1.5, (2, 6)).astype(np.float32)]
    model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))  # keep a reference: it owns the variables
    served = reloaded.serve(x)
    for got, want in zip(served, model(x)):
        # traced SavedModel vs eager Keras: TF may choose other kernels (seen: one ulp on AVX-512)
        assert_same_graph(got, want, why="SavedModel vs eager Keras call")
