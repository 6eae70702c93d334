"""run_graph on graphs built in memory: SSA values, inputs, errors, memory mode."""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.ir import Graph, Node, Value
from caffe2tf.errors import ShapeError, UnsupportedLayerError
from caffe2tf.verification.reference import check_supported, run_graph


def _node(text: str, inputs: tuple[str, ...], outputs: tuple[str, ...],
          weights: tuple[np.ndarray, ...] = ()) -> Node:
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    return Node(name=param.name, type=param.type, inputs=inputs, outputs=outputs, param=param,
                weights=weights)


def _graph(extra: list[Node] | None = None) -> Graph:
    """data -> scale(x2) -> relu (in place) -> sum(relu, scale)."""
    nodes = [
        _node('name: "data" type: "Input" top: "data"', (), ("data",)),
        _node('name: "scale" type: "Scale" bottom: "data" top: "s"', ("data",), ("s",),
              (np.array([2.0, -1.0], np.float32),)),
        _node('name: "relu" type: "ReLU" bottom: "s" top: "s"', ("s",), ("s@relu",)),
        _node('name: "sum" type: "Eltwise" bottom: "s" bottom: "s"', ("s@relu", "s"), ("sum",)),
    ] + (extra or [])
    values = {v: Value(v, v.split("@")[0], (1, 2, 2, 2)) for n in nodes for v in n.outputs}
    return Graph(name="t", nodes=nodes, values=values, inputs=("data",), outputs=("sum",))


def test_in_place_values_are_kept_apart() -> None:
    x = np.arange(-4, 4, dtype=np.float32).reshape(1, 2, 2, 2)
    vals = run_graph(_graph(), {"data": x})
    s = x * np.array([2.0, -1.0], np.float32).reshape(1, 2, 1, 1)
    np.testing.assert_array_equal(vals["s"], s)
    np.testing.assert_array_equal(vals["s@relu"], np.maximum(s, 0))
    np.testing.assert_array_equal(vals["sum"], np.maximum(s, 0) + s)
    assert all(v.dtype == np.float32 for v in vals.values())


def test_collect_false_keeps_outputs_and_calls_back() -> None:
    seen: list[str] = []
    x = np.ones((1, 2, 2, 2), np.float32)
    vals = run_graph(_graph(), {"data": x}, collect=False,
                     on_node=lambda node, outs: seen.append(node.name))
    assert seen == ["scale", "relu", "sum"]
    assert set(vals) == {"data", "sum"}


def test_unsupported_layers_listed_at_once() -> None:
    g = _graph([_node('name: "a" type: "Foo"', ("sum",), ("a",)),
                _node('name: "b" type: "Foo"', ("a",), ("b",)),
                _node('name: "c" type: "Bar"', ("b",), ("c",))])
    with pytest.raises(UnsupportedLayerError) as exc:
        check_supported(g)
    msg = str(exc.value)
    assert "Foo (a, b)" in msg and "Bar (c)" in msg and "\n" not in msg
    with pytest.raises(UnsupportedLayerError):
        run_graph(g, {"data": np.zeros((1, 2, 2, 2), np.float32)})


def test_missing_input_is_an_error() -> None:
    with pytest.raises(ShapeError, match="data"):
        run_graph(_graph(), {"other": np.zeros((1, 2, 2, 2), np.float32)})


def test_kernel_error_names_the_layer() -> None:
    g = _graph()
    with pytest.raises(ShapeError, match="'scale'"):
        run_graph(g, {"data": np.zeros((1, 3, 2, 2), np.float32)})


def _unpool_graph() -> Graph:
    """data -> MAX pool (tops: pooled, mask) -> unpooling Upsample(pooled, mask)."""
    nodes = [
        _node('name: "data" type: "Input" top: "data"', (), ("data",)),
        _node('name: "pool" type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }',
              ("data",), ("pooled", "mask")),
        _node('name: "up" type: "Upsample" upsample_param { scale: 2 }', ("pooled", "mask"),
              ("up",)).with_(reading="unpool"),
    ]
    values = {v: Value(v, v, None) for n in nodes for v in n.outputs}
    return Graph(name="u", nodes=nodes, values=values, inputs=("data",), outputs=("up",))


def test_two_top_layer_feeds_both_tops_on() -> None:
    x = np.array([[[[1, 4, 0, 0], [2, 3, 0, 7], [0, 0, 0, 0], [9, 0, 0, 8]]]], np.float32)
    seen: dict[str, int] = {}
    vals = run_graph(_unpool_graph(), {"data": x}, collect=False,
                     on_node=lambda node, outs: seen.setdefault(node.name, len(outs)))
    assert seen == {"pool": 2, "up": 1}
    # every window maximum stays in place, everything else becomes 0
    want = np.array([[[[0, 4, 0, 0], [0, 0, 0, 7], [0, 0, 0, 0], [9, 0, 0, 8]]]], np.float32)
    np.testing.assert_array_equal(vals["up"], want)


def _detection_graph() -> Graph:
    """loc, conf, priors (all inputs) -> DetectionOutput: the row count depends on the data."""
    nodes = [
        _node('name: "loc" type: "Input" top: "loc"', (), ("loc",)),
        _node('name: "conf" type: "Input" top: "conf"', (), ("conf",)),
        _node('name: "prior" type: "Input" top: "prior"', (), ("prior",)),
        _node('name: "det" type: "DetectionOutput" detection_output_param { num_classes: 2 '
              'code_type: CORNER variance_encoded_in_target: true confidence_threshold: 0.5 '
              'nms_param { nms_threshold: 0.45 } }', ("loc", "conf", "prior"), ("det",)),
    ]
    values = {v: Value(v, v, None) for n in nodes for v in n.outputs}
    return Graph(name="d", nodes=nodes, values=values, inputs=("loc", "conf", "prior"),
                 outputs=("det",))


@pytest.mark.parametrize("scores,rows", [((0.9, 0.8, 0.7), 3), ((0.9, 0.1, 0.7), 2),
                                         ((0.1, 0.1, 0.1), 1)])
def test_data_dependent_row_count(scores: tuple[float, ...], rows: int) -> None:
    boxes = np.array([[0, 0, 0.1, 0.1], [0.3, 0.3, 0.4, 0.4], [0.6, 0.6, 0.9, 0.9]], np.float32)
    prior = np.stack([boxes.reshape(-1), np.ones(12, np.float32)])[None]
    conf = np.array([[1 - s, s] for s in scores], np.float32).reshape(1, -1)
    vals = run_graph(_detection_graph(), {"loc": np.zeros((1, 12), np.float32), "conf": conf,
                                          "prior": prior})
    assert vals["det"].shape == (1, 1, rows, 7)
    if rows == 1 and max(scores) <= 0.5:  # nothing above the threshold: Caffe's empty row
        np.testing.assert_array_equal(vals["det"][0, 0], [[0, -1, -1, -1, -1, -1, -1]])
