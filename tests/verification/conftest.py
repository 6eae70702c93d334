"""Fixtures for verification tests: one-layer nodes built in memory."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.ir import Node

MakeNode = Callable[..., Node]


def build_node(text: str, weights: Sequence[np.ndarray] = (), *, n_in: int = 1,
               n_out: int = 1) -> Node:
    """A Node from a LayerParameter in prototxt text (``type`` required)."""
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    name = param.name or "layer"
    return Node(name=name, type=param.type,
                inputs=tuple(f"in{i}" for i in range(n_in)),
                outputs=tuple(f"{name}_out{i}" for i in range(n_out)),
                param=param,
                weights=tuple(np.asarray(w, dtype=np.float32) for w in weights))


@pytest.fixture
def make_node() -> MakeNode:
    """``make_node('type: "ReLU" relu_param { negative_slope: 0.1 }', weights, n_in=, n_out=)``."""
    return build_node


@pytest.fixture
def rng() -> np.random.RandomState:
    return np.random.RandomState(1234)
