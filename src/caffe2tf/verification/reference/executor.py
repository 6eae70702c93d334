"""Run a :class:`~caffe2tf.ir.Graph` with the NumPy reference kernels.

The executor walks the nodes in Caffe's execution order, feeding each kernel
its input values (NCHW float32) and storing its outputs under the node's SSA
value ids, so an in-place layer's output never overwrites the value it read.
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

import numpy as np

from caffe2tf.ir import INPUT_TYPES, Graph, Node
from caffe2tf.errors import Caffe2TFError, ShapeError, UnsupportedLayerError
from caffe2tf.verification.reference._params import f32
from caffe2tf.verification.reference.registry import get_kernel

__all__ = ["run_graph", "run_node", "check_supported", "INPUT_TYPES"]

log = logging.getLogger(__name__)

# Layers with no effect on inference outputs that we may skip.
_SKIPPED_TYPES = frozenset({"Silence"})


def check_supported(graph: Graph) -> None:
    """Raise one error listing every layer the reference executor cannot run."""
    missing: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.type in INPUT_TYPES or node.type in _SKIPPED_TYPES:
            continue
        if get_kernel(node.type) is None:
            missing.setdefault(node.type, []).append(node.name)
    if missing:
        listing = "; ".join(f"{t} ({', '.join(names)})" for t, names in sorted(missing.items()))
        raise UnsupportedLayerError(
            f"the reference executor has no kernel for: {listing}", file=graph.source)


def run_node(node: Node, input_arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run one node on its input arrays; returns one float32 array per output.

    Raises:
        UnsupportedLayerError: no kernel for ``node.type``.
        ShapeError: the layer's parameters or weights do not fit its inputs.
    """
    fn = get_kernel(node.type)
    if fn is None:
        raise UnsupportedLayerError(
            f"the reference executor has no kernel for type {node.type}",
            layer=node.name, line=node.line)
    arrays = [f32(a) for a in input_arrays]
    try:
        outputs = fn(node, arrays)
    except Caffe2TFError:
        raise
    except (ValueError, IndexError, TypeError) as exc:
        raise ShapeError(f"{node.type}: {exc}", layer=node.name, line=node.line) from exc
    if len(outputs) != len(node.outputs):
        raise ShapeError(f"{node.type}: produced {len(outputs)} outputs for "
                         f"{len(node.outputs)} tops", layer=node.name, line=node.line)
    return [f32(o) for o in outputs]


def _feed_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    wanted = list(graph.inputs)
    for node in graph.nodes:
        if node.type in INPUT_TYPES:
            wanted.extend(v for v in node.outputs if v not in wanted)
    for vid in wanted:
        blob = graph.values[vid].blob if vid in graph.values else vid
        if blob in inputs:
            arr = inputs[blob]
        elif vid in inputs:
            arr = inputs[vid]
        else:
            raise ShapeError(f"no array given for the net input '{blob}'", file=graph.source)
        arr = f32(arr)
        shape = graph.values[vid].shape if vid in graph.values else None
        if shape is not None and tuple(arr.shape) != tuple(shape):
            log.info("input %s fed with shape %s (net declares %s)", blob, arr.shape, shape)
        values[vid] = arr
    return values


NodeCallback = Callable[[Node, list[np.ndarray]], None]


def run_graph(graph: Graph, inputs: Mapping[str, np.ndarray], *, collect: bool = True,
              on_node: NodeCallback | None = None) -> dict[str, np.ndarray]:
    """Run every node of ``graph`` on ``inputs``.

    Args:
        inputs: blob name -> NCHW float32 array for each net input.
        collect: keep every value (True) or only the graph outputs and inputs,
            freeing intermediates as soon as their last consumer has run.
        on_node: called as ``on_node(node, outputs)`` right after each node ran
            (with ``collect=False``, a way to inspect every output of a large
            net without holding them all).

    Returns:
        value id -> float32 array (every value when ``collect``).
    """
    check_supported(graph)
    values = _feed_inputs(graph, inputs)
    last_use: dict[str, int] = {}
    if not collect:
        for i, node in enumerate(graph.nodes):
            for v in node.inputs:
                last_use[v] = i
    keep = set(graph.outputs) | set(values)
    for i, node in enumerate(graph.nodes):
        if node.type in INPUT_TYPES or node.type in _SKIPPED_TYPES:
            continue
        try:
            args = [values[v] for v in node.inputs]
        except KeyError as exc:
            raise ShapeError(f"input value {exc.args[0]} was never computed",
                             layer=node.name, line=node.line) from exc
        outs = run_node(node, args)
        for vid, arr in zip(node.outputs, outs):
            values[vid] = arr
        if on_node is not None:
            on_node(node, outs)
        if not collect:
            for v in set(node.inputs) | set(node.outputs):
                if last_use.get(v, -1) <= i and v not in keep:
                    values.pop(v, None)
    return values
