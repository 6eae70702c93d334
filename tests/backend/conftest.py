"""One-layer graphs built in memory, converted, and checked against the NumPy
reference executor (``caffe2tf.verification.reference``, itself checked
against real Caffe)."""
from __future__ import annotations

import os
from typing import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend import shapes
from caffe2tf.backend.build import BuildResult, build_keras_model
from caffe2tf.ir import Graph, Node, Value
from caffe2tf.backend import layout


def one_layer_graph(text: str, input_shapes: Sequence[Sequence[int]],
                    weights: Sequence[np.ndarray] | None = None, seed: int = 0) -> Graph:
    """An Input node per bottom (``in0``, ``in1``...) and the layer in ``text``
    (prototxt of a LayerParameter; bottoms/tops are filled in when absent).
    Missing weights are drawn at random in the canonical shapes."""
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    param.name = param.name or "layer"
    if not param.bottom:
        param.bottom.extend(f"in{i}" for i in range(len(input_shapes)))
    if not param.top:
        param.top.append("out")
    values: dict[str, Value] = {}
    nodes: list[Node] = []
    for b, s in zip(param.bottom, input_shapes):
        ip = caffe_pb2.LayerParameter(name=b, type="Input", top=[b])
        ip.input_param.shape.add().dim.extend(s)
        values[b] = Value(b, b, tuple(s))
        nodes.append(Node(b, "Input", (), (b,), ip))
    result = shapes.infer(param, [tuple(s) for s in input_shapes])
    rng = np.random.default_rng(seed)
    if weights is None:
        weights = [rng.standard_normal(s).astype(np.float32) for s in result.blobs]
    for t, s in zip(param.top, result.outputs):
        values[t] = Value(t, t, tuple(s))
    nodes.append(Node(param.name, param.type, tuple(param.bottom), tuple(param.top), param,
                      tuple(np.asarray(w, np.float32) for w in weights)))
    return Graph("test", nodes, values, tuple(param.bottom[:len(input_shapes)]), tuple(param.top))


def run_keras(result: BuildResult, graph: Graph, feeds_nchw: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Run a model built with ``outputs="all"``; returns NCHW arrays per value id."""
    feeds = [layout.nchw_to_keras(a) if result.input_layout == "nhwc" else a for a in feeds_nchw]
    out = result.model(feeds[0] if len(feeds) == 1 else feeds)
    return {v: layout.keras_to_nchw(np.asarray(t)) for v, t in out.items()}


def max_rel(actual: np.ndarray, ref: np.ndarray) -> float:
    assert actual.shape == ref.shape, (actual.shape, ref.shape)
    return float(np.max(np.abs(actual.astype(np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-6))


def check_layer(text: str, input_shapes: Sequence[Sequence[int]], weights=None, *, seed: int = 0,
                inputs: Sequence[np.ndarray] | None = None, tol: float = 1e-5,
                input_layout: str = "nhwc") -> tuple[BuildResult, Graph, list[np.ndarray]]:
    """Convert a one-layer net and compare every top with the reference executor."""
    from caffe2tf.verification.reference import run_node

    graph = one_layer_graph(text, input_shapes, weights, seed)
    rng = np.random.default_rng(seed + 1)
    feeds = list(inputs) if inputs is not None else [rng.standard_normal(s).astype(np.float32)
                                                     for s in input_shapes]
    result = build_keras_model(graph, outputs="all", input_layout=input_layout)
    got = run_keras(result, graph, feeds)
    node = graph.nodes[-1]
    want = run_node(node, feeds)
    outs = []
    for vid, ref in zip(node.outputs, want):
        err = max_rel(got[vid], ref)
        assert err <= tol, f"{node.type} top {vid}: max rel error {err:.3g} > {tol}"
        outs.append(got[vid])
    return result, graph, outs


@pytest.fixture
def check() -> Callable[..., tuple]:
    return check_layer


@pytest.fixture
def graph_of() -> Callable[..., Graph]:
    return one_layer_graph


@pytest.fixture(name="run_keras")
def run_keras_fixture() -> Callable[..., dict]:
    return run_keras
