"""The graph IR every pass, translator and executor consumes.

A :class:`Graph` is a Caffe net after reading, phase filtering and SSA renaming:

* every :class:`Value` has exactly one producer (in-place layers get a fresh
  value id, while ``Value.blob`` keeps Caffe's blob name);
* nodes are in Caffe's execution order, which is a topological order;
* shapes are Caffe's NCHW shapes (``None`` where inference was impossible,
  e.g. after an unsupported layer; a single dimension is ``None`` where Caffe's
  size depends on the data: DetectionOutput's rows, ``(1, 1, None, 7)``);
* ``Node.weights`` are float32 arrays already reshaped to the canonical shapes
  listed in :mod:`caffe2tf.frontend.shapes` (e.g. PSPNet ``BN`` blobs that are
  stored 1xCx1x1 become ``(C,)``).

The IR knows nothing about TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from caffe2tf.caffe_proto import caffe_pb2

Shape = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Value:
    """One tensor of the net.

    Attributes:
        id: unique SSA id. Equal to ``blob`` for the first producer of a blob;
            an in-place layer's output is ``"<blob>@<layer name>"``.
        blob: Caffe's blob name (what Caffe and reference files call it).
        shape: NCHW shape, or ``None`` if unknown.
    """

    id: str
    blob: str
    shape: Shape | None


@dataclass(frozen=True, eq=False)
class Node:
    """One Caffe layer.

    Attributes:
        name: Caffe layer name.
        type: Caffe type name ("Convolution", "BN", ...); V1 enums are upgraded.
        inputs / outputs: value ids (``Graph.values`` keys).
        param: the layer's ``LayerParameter`` (blobs cleared); translators read
            their sub-message, e.g. ``node.param.convolution_param``.
        weights: float32 blobs in canonical shapes (empty tuple if none).
        line: 1-based line of the layer in the prototxt, for error messages.
        folded: names of layers folded into this one by passes.
        reading: for a type name that Caffe forks use with different meanings,
            which fork's meaning the reader chose from evidence in the net
            (``BN``: ``"pspnet"`` | ``"segnet"``; ``Upsample``: ``"nearest"`` |
            ``"unpool"``); ``None`` for every other type.
        original_type: the type name the prototxt wrote when the reader upgraded a
            fork alias to a BVLC type (``"ConvolutionDepthwise"`` for a node whose
            ``type`` is ``"Convolution"``); ``None`` otherwise. For reports only.
    """

    name: str
    type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    param: caffe_pb2.LayerParameter
    weights: tuple[np.ndarray, ...] = ()
    line: int | None = None
    folded: tuple[str, ...] = ()
    reading: str | None = None
    original_type: str | None = None

    def with_(self, **changes: object) -> "Node":
        """A copy with some fields replaced (nodes are immutable)."""
        return replace(self, **changes)


@dataclass(eq=False)
class Graph:
    """A whole net: nodes in execution order and the values between them."""

    name: str
    nodes: list[Node]
    values: dict[str, Value]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    source: str | None = None  # prototxt path, for messages
    metadata: dict[str, object] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, value_id: str) -> Node | None:
        for n in self.nodes:
            if value_id in n.outputs:
                return n
        return None

    def consumers(self, value_id: str) -> list[Node]:
        return [n for n in self.nodes if value_id in n.inputs]

    def shape(self, value_id: str) -> Shape | None:
        return self.values[value_id].shape

    def input_shapes(self, node: Node) -> list[Shape | None]:
        return [self.values[v].shape for v in node.inputs]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)


#: Layer types that stand for a net input (the reader turns ``input:`` fields and
#: ``input_shape`` into ``Input`` nodes); the one set every stage uses.
INPUT_TYPES = frozenset({"Input"})


def canonical_axis(axis: int, rank: int, *, allow_end: bool = False) -> int:
    """Caffe's ``Blob::CanonicalAxisIndex``: ``-1`` is the last axis. ``allow_end``
    admits ``rank`` itself (an axis *after* the last, as Slice/Concat ends). Raises
    ``ValueError`` out of range; callers turn it into their own error."""
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank + (1 if allow_end else 0):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return a
