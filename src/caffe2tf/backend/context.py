"""What a translator may know besides its own layer: :class:`TranslationContext`."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from caffe2tf.ir import Graph, Node, Shape
from caffe2tf.errors import ConversionError

INPUT_LAYOUTS = ("nhwc", "nchw")
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


def sanitize_name(name: str) -> str:
    """A valid Keras layer name derived from a Caffe name ('/' and other characters
    Keras or TensorFlow reject become '_')."""
    out = _BAD_CHARS.sub("_", name)
    if not out or not (out[0].isalnum() or out[0] == "_"):
        out = "l_" + out
    return out


@dataclass
class TranslationContext:
    """Shared state of one graph -> Keras build.

    Attributes:
        graph: the graph being converted; ``ctx.shape(value_id)`` gives NCHW shapes.
        input_layout: ``"nhwc"`` (model inputs in Keras layout) or ``"nchw"``
            (inputs in Caffe's layout, transposed once at the boundary).
        options: free-form options for plug-ins.
        model_inputs: value id -> Keras ``Input`` tensor (filled by the Input translator).
        layers_of_node: Caffe layer name -> names of the Keras layers made for it.
        caffe_name_of: Keras layer name -> Caffe layer name.
    """

    graph: Graph
    input_layout: str = "nhwc"
    options: dict[str, Any] = field(default_factory=dict)
    model_inputs: dict[str, Any] = field(default_factory=dict)
    layers_of_node: dict[str, list[str]] = field(default_factory=dict)
    caffe_name_of: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_layout not in INPUT_LAYOUTS:
            raise ValueError(f"input_layout must be one of {INPUT_LAYOUTS}, got {self.input_layout!r}")

    def unique_name(self, base: str, node: Node) -> str:
        """A Keras layer name unused so far, derived from ``base``, recorded for ``node``."""
        name = sanitize_name(base)
        if name in self.caffe_name_of:
            i = 1
            while f"{name}_{i}" in self.caffe_name_of:
                i += 1
            name = f"{name}_{i}"
        self.caffe_name_of[name] = node.name
        self.layers_of_node.setdefault(node.name, []).append(name)
        return name

    def layer_name(self, node: Node, suffix: str = "") -> str:
        """Name for a Keras layer made for ``node``: its Caffe name plus ``suffix``."""
        return self.unique_name(node.name + suffix, node)

    def shape(self, value_id: str) -> Shape:
        """NCHW shape of a value; a :class:`ConversionError` if it is unknown."""
        shape = self.graph.values[value_id].shape
        if shape is None:
            raise ConversionError(f"the shape of '{value_id}' is unknown: a layer before it has no shape rule "
                                  "(a plug-in type needs caffe2tf.frontend.shapes.rule)", file=self.graph.source)
        return shape

    def in_shapes(self, node: Node) -> list[Shape]:
        return [self.shape(v) for v in node.inputs]

    def out_shapes(self, node: Node) -> list[Shape]:
        return [self.shape(v) for v in node.outputs]


def weights_of(node: Node, count: int | tuple[int, ...]) -> tuple:
    """``node.weights`` after checking how many blobs there are."""
    ok = len(node.weights) in count if isinstance(count, tuple) else len(node.weights) == count
    if not ok:
        raise ConversionError(f"{node.type} needs {count} weight blob(s), has {len(node.weights)} "
                              "(was the caffemodel given?)", layer=node.name, line=node.line)
    return node.weights
