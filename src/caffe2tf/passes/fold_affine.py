"""Fold per-channel affine layers into the Convolution / Deconvolution / InnerProduct before them.

Before::

    conv1 (Convolution) -> conv1 -> conv1/bn (BN) -> conv1@conv1/bn -> conv1/relu (ReLU)

After::

    conv1 (Convolution, folded=("conv1/bn",)) -> conv1@conv1/bn -> conv1/relu (ReLU)

A layer F is folded into its producer P when F has one bottom, P is a
Convolution, Deconvolution or InnerProduct with a plain channel axis, and F's
bottom has no other consumer and is not a net output. F computes
``y = a * x + b`` per output channel:

* BatchNorm: mean = blob0 / s, var = blob1 / s (s = blob2, 0 if s == 0);
  a = 1 / sqrt(var + eps), b = -mean * a
* BN, reading ``pspnet``: a = slope / sqrt(var + eps), b = bias - mean * a
* BN, reading ``segnet`` with ``bn_mode: INFERENCE``: a = scale, b = shift. Never the
  default LEARN mode: it normalises with the batch's own statistics (not an affine map)
* Scale (one bottom, axis 1, num_axes 1): a = blob0, b = blob1 or 0
* Bias (one bottom, axis 1, num_axes 1): a = 1, b = blob0

and P's weights become ``W * a`` (per output channel), bias ``b0 * a + b``.
The arithmetic is done in float64 and rounded to float32 once.
"""
from __future__ import annotations

import logging

import numpy as np

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.ir import Graph, Node

log = logging.getLogger(__name__)

LINEAR_TYPES = {"Convolution", "Deconvolution", "InnerProduct"}
AFFINE_TYPES = {"BatchNorm", "BN", "Scale", "Bias"}


def affine_coefficients(node: Node, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, b) in float64 with y = a * x + b per channel, or None if not a per-channel affine."""
    w = [np.asarray(b, dtype=np.float64) for b in node.weights]
    if node.type == "BatchNorm":
        s = w[2].reshape(-1)[0]
        factor = 0.0 if s == 0 else 1.0 / s
        mean, var = w[0] * factor, w[1] * factor
        a = 1.0 / np.sqrt(var + np.float64(np.float32(node.param.batch_norm_param.eps)))
        return a, -mean * a
    if node.type == "BN" and node.reading == "segnet":
        if node.param.bn_param.bn_mode != caffe_pb2.BNParameter.INFERENCE or len(w) != 2:
            return None  # LEARN: batch statistics
        a, b = w[0].reshape(-1), w[1].reshape(-1)
        return (a, b) if a.size == channels and b.size == channels else None
    if node.type == "BN":
        if node.reading not in (None, "pspnet") or len(w) != 4:
            return None
        slope, bias, mean, var = w
        a = slope / np.sqrt(var + np.float64(np.float32(node.param.bn_param.eps)))
        return a, bias - mean * a
    if node.type in ("Scale", "Bias"):
        p = node.param.scale_param if node.type == "Scale" else node.param.bias_param
        if len(node.inputs) != 1 or p.axis not in (1, -3) or p.num_axes != 1:
            return None
        if node.type == "Scale":
            a = w[0].reshape(-1)
            b = w[1].reshape(-1) if len(w) > 1 else np.zeros(channels)
        else:
            a, b = np.ones(channels), w[0].reshape(-1)
        return (a, b) if a.size == channels and b.size == channels else None
    return None


def _fold(linear: Node, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    W = np.asarray(linear.weights[0], dtype=np.float64)
    b0 = np.asarray(linear.weights[1], dtype=np.float64) if len(linear.weights) > 1 else np.zeros(a.size)
    if linear.type == "Convolution":
        W = W * a.reshape(-1, *([1] * (W.ndim - 1)))
    elif linear.type == "Deconvolution":
        g = linear.param.convolution_param.group
        cin, opg = W.shape[0], W.shape[1]
        Wg = W.reshape(g, cin // g, opg, *W.shape[2:])
        W = (Wg * a.reshape(g, 1, opg, *([1] * (W.ndim - 2)))).reshape(W.shape)
    elif linear.param.inner_product_param.transpose:  # (K, N)
        W = W * a.reshape(1, -1)
    else:  # (N, K)
        W = W * a.reshape(-1, 1)
    return W.astype(np.float32), (b0 * a + b).astype(np.float32)


def _channel_axis_ok(graph: Graph, linear: Node) -> bool:
    if linear.type == "InnerProduct":
        shape = graph.values[linear.outputs[0]].shape
        return shape is not None and len(shape) == 2
    return linear.param.convolution_param.axis in (1,)


def fold_affine_into_linear(graph: Graph) -> Graph:
    nodes = list(graph.nodes)
    values = dict(graph.values)
    consumers: dict[str, int] = {}
    for n in nodes:
        for v in n.inputs:
            consumers[v] = consumers.get(v, 0) + 1
    producer_index = {v: i for i, n in enumerate(nodes) for v in n.outputs}
    removed: set[int] = set()
    for i, node in enumerate(nodes):
        if node.type not in AFFINE_TYPES or len(node.inputs) != 1 or not node.weights:
            continue
        v = node.inputs[0]
        j = producer_index.get(v)
        if j is None or j in removed or consumers.get(v, 0) != 1 or v in graph.outputs:
            continue
        linear = nodes[j]
        if linear.type not in LINEAR_TYPES or not linear.weights or not _channel_axis_ok(graph, linear):
            continue
        channels = (linear.param.inner_product_param.num_output if linear.type == "InnerProduct"
                    else linear.param.convolution_param.num_output)
        coeffs = affine_coefficients(node, channels)
        if coeffs is None:
            continue
        W, bias = _fold(linear, *coeffs)
        param = type(linear.param)()
        param.CopyFrom(linear.param)
        sub = param.inner_product_param if linear.type == "InnerProduct" else param.convolution_param
        sub.bias_term = True
        nodes[j] = linear.with_(weights=(W, bias), outputs=node.outputs, param=param,
                                folded=linear.folded + (node.name,))
        for out in node.outputs:
            producer_index[out] = j
        del values[v]
        removed.add(i)
        log.debug("folded %s (%s) into %s", node.name, node.type, linear.name)
    new_nodes = [n for i, n in enumerate(nodes) if i not in removed]
    if removed:
        log.info("folded %d affine layer(s) into convolutions / inner products", len(removed))
    return Graph(name=graph.name, nodes=new_nodes, values=values, inputs=graph.inputs,
                 outputs=graph.outputs, source=graph.source, metadata=dict(graph.metadata))
