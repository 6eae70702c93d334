"""Per-layer facts for `caffe2tf inspect` and the benchmarks: shapes, parameters, multiply-adds."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from caffe2tf.frontend import readings
from caffe2tf.frontend import shapes as shape_rules
from caffe2tf.ir import Graph, Node


@dataclass(frozen=True)
class LayerSummary:
    name: str
    type: str
    inputs: list[str]          # Caffe blob names
    outputs: list[str]
    output_shapes: list[list[int | None] | None]  # a None dim: data-dependent (DetectionOutput rows)
    params: int
    macs: int                  # multiply-accumulates of one forward pass
    supported: bool
    # the fork meaning of a clashing type name ("pspnet", "segnet", "nearest", "unpool"),
    # "undecided" where only the caffemodel can tell; None for every other type
    reading: str | None = None
    original_type: str | None = None  # a fork alias the reader upgraded (ConvolutionDepthwise)

    def to_json(self) -> dict:
        return asdict(self)


def node_macs(graph: Graph, node: Node) -> int:
    """Multiply-adds of the matrix work of a layer (conv, deconv, inner product)."""
    ins = graph.input_shapes(node)
    outs = [graph.values[v].shape for v in node.outputs]
    if not ins or shape_rules.has_unknown_dim(ins[0]) or not outs or shape_rules.has_unknown_dim(outs[0]):
        return 0
    x, y = ins[0], outs[0]
    if node.type == "Convolution":
        p = node.param.convolution_param
        axis = shape_rules.canonical_axis(p.axis, len(x))
        k = math.prod(shape_rules.conv_geometry(p, len(x) - axis - 1).kernel)
        return math.prod(y) * (x[axis] // p.group) * k
    if node.type == "Deconvolution":
        p = node.param.convolution_param
        axis = shape_rules.canonical_axis(p.axis, len(x))
        k = math.prod(shape_rules.conv_geometry(p, len(x) - axis - 1).kernel)
        return math.prod(x) * (p.num_output // p.group) * k
    if node.type == "InnerProduct":
        axis = shape_rules.canonical_axis(node.param.inner_product_param.axis, len(x))
        return math.prod(y) * math.prod(x[axis:])
    return 0


def node_params(graph: Graph, node: Node) -> int:
    if node.weights:
        return sum(int(w.size) for w in node.weights)
    ins = graph.input_shapes(node)
    if node.type == "Input" or not shape_rules.has_rule(node.type) or any(shape_rules.has_unknown_dim(s) for s in ins):
        return 0
    if readings.is_clashing(node.type) and node.reading is None:
        return 0  # undecided: its blobs are unknown until the caffemodel says which fork it is
    return sum(math.prod(s) for s in shape_rules.infer(node.param, ins, node.reading).blobs)  # type: ignore[arg-type]


def summarize(graph: Graph, supported_types: set[str] | None = None) -> list[LayerSummary]:
    rows = []
    for node in graph.nodes:
        supported = shape_rules.has_rule(node.type) or node.type == "Input"
        if supported_types is not None:
            supported = supported and node.type in supported_types
        rows.append(LayerSummary(
            name=node.name, type=node.type,
            inputs=[graph.values[v].blob for v in node.inputs],
            outputs=[graph.values[v].blob for v in node.outputs],
            output_shapes=[list(s) if (s := graph.values[v].shape) is not None else None for v in node.outputs],
            params=node_params(graph, node), macs=node_macs(graph, node), supported=supported,
            reading=node.reading or (readings.UNDECIDED if readings.is_clashing(node.type) else None),
            original_type=node.original_type))
    return rows


def total_macs(graph: Graph) -> int:
    return sum(node_macs(graph, n) for n in graph.nodes)
