"""Graph -> Keras functional model, one translator call per node.

``build_keras_model`` checks the whole graph for unsupported types first (one
error lists them all), then walks the nodes in execution order. Every Caffe
value gets its own named Keras tensor; 4-D values are NHWC (see
:mod:`caffe2tf.backend.layout`), other ranks keep Caffe's axis order.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import keras

from caffe2tf.ir import Graph
from caffe2tf.errors import Caffe2TFError, ConversionError
from caffe2tf.backend import layout, registry
from caffe2tf.backend.context import TranslationContext, sanitize_name

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    """A built model and how its tensors map back to Caffe.

    Attributes:
        model: the Keras model. Inputs: one per graph input, in graph order (a single
            tensor when there is one). Outputs: with ``outputs="graph"`` the graph's
            outputs in order (a single tensor when there is one); with ``"all"`` a
            dict ``{value_id: tensor}`` of every value but the inputs.
        value_to_tensor_name: value id -> name of the Keras layer whose output holds it.
        keras_layer_for_node: Caffe layer name -> names of the Keras layers made for it.
        caffe_layer_for_keras: Keras layer name -> Caffe layer name.
        input_layout: ``"nhwc"`` or ``"nchw"``: the layout of the model's 4-D inputs.
    """

    model: keras.Model
    value_to_tensor_name: dict[str, str]
    keras_layer_for_node: dict[str, list[str]]
    caffe_layer_for_keras: dict[str, str] = field(default_factory=dict)
    input_layout: str = "nhwc"

    def output_layout(self, value_id: str, graph: Graph) -> str:
        """``"nhwc"`` if the Keras tensor of ``value_id`` is a transposed NCHW value, else ``"caffe"``."""
        shape = graph.values[value_id].shape
        return "nhwc" if shape is not None and len(shape) == 4 else "caffe"


def build_keras_model(graph: Graph, *, input_layout: str = "nhwc",
                      outputs: Literal["graph", "all"] = "graph", name: str | None = None,
                      options: dict[str, Any] | None = None) -> BuildResult:
    """Translate ``graph`` (with weights attached) into a Keras model.

    Raises :class:`~caffe2tf.errors.UnsupportedLayerError` listing every
    unsupported layer type, or :class:`~caffe2tf.errors.ConversionError` naming
    the layer whose translation failed.
    """
    if outputs not in ("graph", "all"):
        raise ValueError(f"outputs must be 'graph' or 'all', got {outputs!r}")
    registry.check_supported(graph)
    ctx = TranslationContext(graph, input_layout=input_layout, options=dict(options or {}))
    tensors: dict[str, Any] = {}
    owner: dict[int, str] = {}  # id(tensor) -> value id that first claimed it
    for node in graph.nodes:
        ins = [tensors[v] for v in node.inputs]
        outs = _translate(node, ins, ctx, graph)
        for vid, t in zip(node.outputs, outs):
            if id(t) in owner or any(t is i for i in ins):  # a translator passed a tensor through: give the value its own
                t = keras.layers.Identity(name=ctx.layer_name(node, "_out"))(t)
            _check_shape(node, vid, t, graph)
            owner[id(t)] = vid
            tensors[vid] = t
    missing = [v for v in graph.inputs if v not in ctx.model_inputs]
    if missing:
        raise ConversionError(f"graph inputs {missing} have no Input layer", file=graph.source)
    model_inputs = [ctx.model_inputs[v] for v in graph.inputs]
    if outputs == "all":
        model_outputs: Any = {v: t for v, t in tensors.items() if v not in ctx.model_inputs}
    else:
        model_outputs = [tensors[v] for v in graph.outputs]
        if len(model_outputs) == 1:
            model_outputs = model_outputs[0]
    model = keras.Model(model_inputs[0] if len(model_inputs) == 1 else model_inputs, model_outputs,
                        name=sanitize_name(name or graph.name or "caffe2tf"))
    value_names = {v: t._keras_history.operation.name for v, t in tensors.items()}
    log.info("built Keras model '%s': %d Caffe layers -> %d Keras layers", model.name, len(graph.nodes),
             len(model.layers))
    return BuildResult(model, value_names, {k: list(v) for k, v in ctx.layers_of_node.items()},
                       dict(ctx.caffe_name_of), input_layout)


def _translate(node, ins, ctx: TranslationContext, graph: Graph) -> list:
    fn = registry.get_translator(node.type)
    try:
        outs = fn(node, ins, ctx)
    except Caffe2TFError as exc:
        if exc.layer is None:
            raise type(exc)(exc.message, file=exc.file or graph.source, line=exc.line or node.line,
                            layer=node.name) from exc
        raise
    except Exception as exc:
        raise ConversionError(f"converting this {node.type} layer failed: {type(exc).__name__}: {exc}",
                              input_shapes=_input_shapes(node, graph),
                              file=graph.source, line=node.line, layer=node.name) from exc
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    if len(outs) != len(node.outputs):
        raise ConversionError(f"the {node.type} translator returned {len(outs)} tensor(s) for "
                              f"{len(node.outputs)} top(s)", input_shapes=_input_shapes(node, graph),
                              file=graph.source, line=node.line, layer=node.name)
    return outs


def _input_shapes(node, graph: Graph) -> list:
    """The Caffe (NCHW) shapes of ``node``'s bottoms, for error messages."""
    return [graph.values[v].shape for v in node.inputs]


def _check_shape(node, vid: str, tensor, graph: Graph) -> None:
    """The Keras tensor must have the Keras layout of Caffe's shape (batch may be None)."""
    caffe_shape = graph.values[vid].shape
    if caffe_shape is None:
        return
    want = layout.to_keras_shape(caffe_shape)
    got = tuple(tensor.shape)
    if len(got) != len(want) or any(g is not None and g != w for g, w in zip(got, want)):
        raise ConversionError(f"the {node.type} translator made a tensor of shape {got} for top "
                              f"'{graph.values[vid].blob}'; Caffe's shape {tuple(caffe_shape)} is {want} in Keras",
                              input_shapes=_input_shapes(node, graph),
                              file=graph.source, line=node.line, layer=node.name)
