"""Graph -> prototxt (+ caffemodel) must read back as the same computation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.passes import run_passes
from caffe2tf.frontend.prototxt import parse_prototxt_text
from caffe2tf.frontend.prototxt_writer import (caffemodel_layers, graph_to_net_parameter, graph_to_prototxt,
                                                write_net, write_prototxt)
from caffe2tf.frontend.reader import load_net
from caffe2tf.verification.reference.executor import run_graph

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mini_pspnet"


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


def _structure(graph):
    """Layer name, type, bottom blobs and top blobs: what survives a write / read round trip."""
    return [(n.name, n.type, [graph.values[v].blob for v in n.inputs], [graph.values[v].blob for v in n.outputs])
            for n in graph.nodes]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "net.prototxt"
    p.write_text(text)
    return p


LEGACY_INPUT_NET = """
name: "tiny"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        param { lr_mult: 1 } convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: false
        weight_filler { type: "msra" } } }
layer { name: "bn" type: "BN" bottom: "conv" top: "conv" bn_param { eps: 1e-4 frozen: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv" include { phase: TEST } }
layer { name: "train_only" type: "Dropout" bottom: "conv" top: "conv" include { phase: TRAIN } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "interp" type: "Interp" bottom: "pool" top: "up" interp_param { height: 8 width: 8 } }
"""


def test_round_trip_structure_and_params(tmp_path):
    g = load_net(_write(tmp_path, LEGACY_INPUT_NET))
    text = graph_to_prototxt(g)
    assert text.startswith("# written by caffe2tf")
    g2 = load_net(_write_other(tmp_path, text))
    assert _structure(g2) == _structure(g)
    assert [g2.values[v].shape for v in g2.values] == [g.values[v].shape for v in g.values]
    for a, b in zip(g.nodes, g2.nodes):
        assert b.param == _without_rules(a.param), a.name
    # the legacy input became an Input layer; the TRAIN-only layer is gone, the TEST rule is dropped
    net = parse_prototxt_text(text).net
    assert net.layer[0].type == "Input" and list(net.layer[0].input_param.shape[0].dim) == [1, 3, 8, 8]
    assert "train_only" not in text and "include" not in text
    # fork parameters are written under their usual names
    assert "bn_param {" in text and "interp_param {" in text
    assert not net.input and not net.input_dim


def _write_other(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "written.prototxt"
    p.write_text(text)
    return p


def _without_rules(param: caffe_pb2.LayerParameter) -> caffe_pb2.LayerParameter:
    p = caffe_pb2.LayerParameter()
    p.CopyFrom(param)
    for f in ("include", "exclude", "phase"):
        p.ClearField(f)
    return p


def test_text_is_protobuf_text_format_and_parses_back_equal(tmp_path):
    g = load_net(_write(tmp_path, LEGACY_INPUT_NET))
    net = graph_to_net_parameter(g)
    parsed = text_format.Parse(graph_to_prototxt(g, header=False), caffe_pb2.NetParameter())
    assert parsed == net
    assert parsed.name == "tiny"


def test_strip_training_drops_param_specs_and_fillers(tmp_path):
    g = load_net(_write(tmp_path, LEGACY_INPUT_NET))
    text = graph_to_prototxt(g, strip_training=True, header=False)
    assert "lr_mult" not in text and "weight_filler" not in text
    net = parse_prototxt_text(text).net
    conv = next(l for l in net.layer if l.name == "conv")
    assert conv.convolution_param.num_output == 4 and conv.convolution_param.bias_term is False


def test_float_parameters_survive_exactly(tmp_path):
    text = LEGACY_INPUT_NET.replace("eps: 1e-4", "eps: 1.2345678e-5").replace(
        'type: "ReLU" bottom: "conv" top: "conv" }', 'type: "ReLU" bottom: "conv" top: "conv" '
        "relu_param { negative_slope: 0.1 } }")
    g = load_net(_write(tmp_path, text))
    g2 = load_net(_write_other(tmp_path, graph_to_prototxt(g)))
    assert g2.node("bn").param.bn_param.eps == g.node("bn").param.bn_param.eps
    assert g2.node("relu").param.relu_param.negative_slope == np.float32(0.1)


def test_caffemodel_layers_lists_only_weighted_nodes(tmp_path):
    g = load_net(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel")
    layers = list(caffemodel_layers(g))
    assert [name for name, _, _ in layers] == [n.name for n in g.nodes if n.weights]
    assert all(b.dtype == np.float32 for _, _, blobs in layers for b in blobs)


def test_folded_mini_pspnet_written_and_read_back_computes_the_same(tmp_path):
    g = load_net(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel")
    folded = run_passes(g)
    assert any(n.folded for n in folded.nodes)
    proto, model = write_net(folded, tmp_path / "folded.prototxt", tmp_path / "folded.caffemodel")
    assert "folded into" in proto.read_text().splitlines()[1]
    back = load_net(proto, model)
    assert "BN" not in {n.type for n in back.nodes}
    assert _structure(back) == _structure(folded)
    for a, b in zip(folded.nodes, back.nodes):
        assert len(a.weights) == len(b.weights), a.name
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(wa, wb)
    x = {"data": np.random.default_rng(0).normal(scale=50, size=(1, 3, 113, 113)).astype(np.float32)}
    ref = run_graph(g, x, collect=False)
    got = run_graph(back, x, collect=False)
    for out in g.outputs:
        blob = g.values[out].blob
        (got_id,) = [v for v in back.outputs if back.values[v].blob == blob]
        assert _rel(got[got_id], ref[out]) < 1e-5


def test_write_prototxt_is_atomic_and_returns_path(tmp_path):
    g = load_net(_write(tmp_path, LEGACY_INPUT_NET))
    out = write_prototxt(tmp_path / "o.prototxt", g, header="line one\nline two")
    assert out.read_text().startswith("# line one\n# line two\n")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("field", ["include", "exclude"])
def test_phase_rules_are_not_written(tmp_path, field):
    text = LEGACY_INPUT_NET.replace("include { phase: TEST }", f"{field} {{ phase: TRAIN }}")
    g = load_net(_write(tmp_path, text))
    assert field not in graph_to_prototxt(g)
