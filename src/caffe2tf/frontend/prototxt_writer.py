"""A :class:`~caffe2tf.ir.Graph` back to Caffe files: prototxt text (+ caffemodel).

The reader's counterpart for graphs that passes have rewritten, e.g. to hand a
BN-folded PSPNet to a runtime that cannot run PSPNet's ``BN`` (OpenCV dnn)::

    graph = run_passes(load_net("net.prototxt", "weights.caffemodel"))
    write_net(graph, "folded.prototxt", "folded.caffemodel")

How a graph becomes a ``NetParameter``:

* one V2 ``layer`` per node, in the graph's (execution) order; the layer is the
  node's ``param`` (``LayerParameter`` with blobs cleared; a fold has already set
  ``bias_term: true`` on the conv it folded into) with
  - ``bottom`` / ``top`` rewritten from the node's value ids to Caffe blob names
    (``Value.blob``), so in-place layers are in-place again and reading the file
    back yields the same computation;
  - ``include`` / ``exclude`` rules removed: the graph was already filtered for one
    phase / level / stages, and the written net must not be filtered again
    differently;
  - ``phase`` removed for the same reason;
* legacy ``input:``/``input_dim`` fields and Data-type layers were turned into
  ``Input`` nodes by the reader and are written as ``Input`` layers;
* ``strip_training=True`` also drops what only training reads (``param`` specs,
  ``loss_weight``, ``propagate_down``, fillers), e.g. because a fold added a bias
  blob that the conv's ``param`` specs do not mention.

Field names, not numbers, end up in the text, so a fork's parameter that our
schema keeps under a private field number (``bn_param``, ``interp_param``) is
written under its usual name.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import Message

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.ir import Graph, Node

log = logging.getLogger(__name__)

__all__ = ["graph_to_net_parameter", "net_to_prototxt", "graph_to_prototxt", "write_prototxt",
           "caffemodel_layers", "write_net"]

_TRAINING_ONLY_LAYER_FIELDS = ("param", "loss_weight", "propagate_down", "include", "exclude", "phase")


def _strip_fillers(msg: Message) -> None:
    """Clear every ``*_filler`` sub-message, recursively (they only initialise training)."""
    for fd, value in list(msg.ListFields()):
        if fd.message_type is None:
            continue
        if fd.name.endswith("_filler"):
            msg.ClearField(fd.name)
        elif isinstance(value, Message):
            _strip_fillers(value)
        else:  # a repeated message field
            for item in value:
                _strip_fillers(item)


def _layer(graph: Graph, node: Node, strip_training: bool) -> caffe_pb2.LayerParameter:
    p = caffe_pb2.LayerParameter()
    p.CopyFrom(node.param)
    p.name = node.name
    p.type = node.type
    p.ClearField("blobs")
    p.ClearField("bottom")
    p.ClearField("top")
    p.bottom.extend(graph.values[v].blob for v in node.inputs)
    p.top.extend(graph.values[v].blob for v in node.outputs)
    for f in ("include", "exclude", "phase"):
        p.ClearField(f)
    if strip_training:
        for f in _TRAINING_ONLY_LAYER_FIELDS:
            p.ClearField(f)
        _strip_fillers(p)
    return p


def graph_to_net_parameter(graph: Graph, *, name: str | None = None,
                           strip_training: bool = False) -> caffe_pb2.NetParameter:
    """The graph as a V2 ``NetParameter`` (no blobs); see the module docstring."""
    net = caffe_pb2.NetParameter(name=name if name is not None else graph.name)
    for node in graph.nodes:
        net.layer.append(_layer(graph, node, strip_training))
    return net


def net_to_prototxt(net: caffe_pb2.NetParameter, *, header: str | None = None) -> str:
    """Protobuf text format of ``net``; ``header`` lines become ``#`` comments on top."""
    text = text_format.MessageToString(net, as_utf8=True)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    return text


def _default_header(graph: Graph) -> str:
    folds = sum(len(n.folded) for n in graph.nodes)
    lines = [f"written by caffe2tf from {graph.source or graph.name!s}"]
    if folds:
        lines.append(f"{folds} layer(s) folded into the convolution / inner product before them")
    return "\n".join(lines)


def graph_to_prototxt(graph: Graph, *, name: str | None = None, strip_training: bool = False,
                      header: str | None | bool = True) -> str:
    """Prototxt text of the graph. ``header=True`` writes a comment naming the source."""
    net = graph_to_net_parameter(graph, name=name, strip_training=strip_training)
    head = _default_header(graph) if header is True else (header or None)
    return net_to_prototxt(net, header=head)


def _atomic_write(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_prototxt(path: str | os.PathLike, graph: Graph, *, name: str | None = None,
                   strip_training: bool = False, header: str | None | bool = True) -> Path:
    """Write the graph as prototxt text to ``path`` (atomically); returns the path."""
    out = Path(path)
    _atomic_write(out, graph_to_prototxt(graph, name=name, strip_training=strip_training, header=header))
    return out


def caffemodel_layers(graph: Graph) -> Iterator[tuple[str, str, list[np.ndarray]]]:
    """``(name, type, blobs)`` of every node that has weights, for ``write_caffemodel``.

    Blobs are written in their canonical IR shapes (e.g. a BN's ``(C,)`` rather
    than the stored ``1xCx1x1``; a conv bias ``(C,)``), which Caffe, OpenCV and
    our reader all accept.
    """
    for node in graph.nodes:
        if node.weights:
            yield node.name, node.type, [np.asarray(w, dtype=np.float32) for w in node.weights]


def write_net(graph: Graph, prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None = None, *,
              name: str | None = None, strip_training: bool = False,
              header: str | None | bool = True) -> tuple[Path, Path | None]:
    """Write the graph's prototxt and, if ``caffemodel`` is given, its weights."""
    from caffe2tf.frontend.caffemodel_writer import write_caffemodel

    proto_path = write_prototxt(prototxt, graph, name=name, strip_training=strip_training, header=header)
    model_path = None
    if caffemodel is not None:
        model_path = Path(caffemodel)
        tmp = model_path.with_name(f".{model_path.name}.{os.getpid()}.tmp")
        try:
            write_caffemodel(tmp, caffemodel_layers(graph), name=name if name is not None else graph.name)
            os.replace(tmp, model_path)
        finally:
            tmp.unlink(missing_ok=True)
    log.info("wrote %s%s", proto_path, f" and {model_path}" if model_path else "")
    return proto_path, model_path
