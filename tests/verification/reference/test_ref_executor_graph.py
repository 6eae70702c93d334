"""run_graph on graphs built in memory: SSA values, inputs, errors, memory mode."""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.converter.ir import Graph, Node, Value
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
