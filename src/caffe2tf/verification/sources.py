"""Where activations come from: net inputs, the three reference sources, the converted model.

Every reference source yields the same thing, a
:class:`~caffe2tf.verification.reference_file.ReferenceFile` (in memory or read
from disk), whose layers are matched to the graph by Caffe layer name:

* ``file``    — a ``caffe-reference/1`` file (``docs/reference_format.md``);
* ``pycaffe`` — live Caffe, run layer by layer (:mod:`.dump_reference`);
* ``builtin`` — the NumPy Caffe-semantics executor (:mod:`.reference`).

The converted model's activations come from :func:`model_activations`, as NCHW
arrays keyed by the graph's value ids.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from caffe2tf.ir import INPUT_TYPES, Graph
from caffe2tf.errors import Caffe2TFError
from caffe2tf.verification import dump_reference as dump
from caffe2tf.verification.reference_file import (
    RecordedLayer, RecordedOutput, ReferenceFile, read_reference)

__all__ = ["SOURCE_KINDS", "InputOptions", "pycaffe_available", "choose_source", "make_inputs",
           "declared_input_shapes", "reference_from_file", "reference_from_builtin",
           "reference_from_pycaffe", "model_activations", "INPUT_TYPES"]

log = logging.getLogger(__name__)

SOURCE_KINDS = ("file", "pycaffe", "builtin")


class InputOptionError(Caffe2TFError):
    """A bad ``--input`` or preprocessing option."""


@dataclass(frozen=True)
class InputOptions:
    """How the net's inputs are made (``--input`` and the Caffe-style preprocessing flags).

    Attributes:
        specs: ``random``, ``x.npy``, an image, or ``BLOB=...`` per input; inputs
            not named are ``random``.
        mean: per-channel mean in the net's channel order (images only).
        scale: multiplies after the mean subtraction (images only).
        bgr: swap an image's RGB to BGR.
        resize: (H, W) to feed instead of the declared size.
        seed: seed of ``random`` inputs.
    """

    specs: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None
    scale: float = 1.0
    bgr: bool = False
    resize: tuple[int, int] | None = None
    seed: int = 0

    def describe(self) -> str:
        specs = ", ".join(self.specs) if self.specs else "random"
        extra = [f"mean {','.join(f'{m:g}' for m in self.mean)}" if self.mean else "",
                 f"scale {self.scale:g}" if self.scale != 1.0 else "", "BGR" if self.bgr else "",
                 f"resized to {self.resize[0]}x{self.resize[1]}" if self.resize else "",
                 f"standard normal, seed {self.seed}" if "random" in specs else ""]
        extra = [e for e in extra if e]
        return specs + (f" ({', '.join(extra)})" if extra else "")


def pycaffe_available() -> bool:
    """True when ``import caffe`` works here."""
    try:
        importlib.import_module("caffe")
    except Exception:  # noqa: BLE001 - a broken pycaffe install counts as absent
        return False
    return True


def choose_source(reference: str | None, caffe: bool, builtin: bool) -> str:
    """``--reference FILE | --caffe | --builtin`` -> a source kind; by default pycaffe
    when importable, else the built-in executor."""
    given = [k for k, on in (("file", reference is not None), ("pycaffe", caffe), ("builtin", builtin)) if on]
    if len(given) > 1:
        raise InputOptionError("give at most one of --reference, --caffe, --builtin")
    if given:
        if given[0] == "pycaffe" and not pycaffe_available():
            raise InputOptionError("--caffe: pycaffe is not importable here (run `caffe2tf dump-reference` "
                                   "where Caffe is installed and pass the .h5 with --reference)")
        return given[0]
    return "pycaffe" if pycaffe_available() else "builtin"


def declared_input_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """{input blob: NCHW shape} in the net's input order."""
    out: dict[str, tuple[int, ...]] = {}
    for node in graph.nodes:
        if node.type in INPUT_TYPES:
            for v in node.outputs:
                shape = graph.values[v].shape
                if shape is None:
                    raise InputOptionError(f"the shape of input '{graph.values[v].blob}' is unknown",
                                           file=graph.source)
                out[graph.values[v].blob] = tuple(shape)
    return out


def make_inputs(shapes: Mapping[str, Sequence[int]], options: InputOptions) -> dict[str, np.ndarray]:
    """The net inputs (blob -> NCHW float32) described by ``options``."""
    try:
        specs = dump.assign_inputs(options.specs, list(shapes))
        return {b: dump.load_input(specs[b], shapes[b], mean=options.mean, scale=options.scale,
                                   bgr=options.bgr, resize=options.resize, seed=options.seed)
                for b in shapes}
    except dump.InputError as exc:
        raise InputOptionError(str(exc)) from None


def reference_from_file(path: str) -> ReferenceFile:
    """A recorded reference (raises ReferenceFileError, exit 2, when malformed)."""
    return read_reference(path)


def _recorded(array: np.ndarray) -> RecordedOutput:
    a = np.asarray(array, dtype=np.float32)
    return RecordedOutput(shape=tuple(a.shape), array=a)


def _reference(case: str, generator: str, inputs: Mapping[str, np.ndarray],
               layers: Sequence[tuple[str, str, Sequence[str], Sequence[str], Sequence[np.ndarray]]]
               ) -> ReferenceFile:
    recs = [RecordedLayer(index=i, name=n, type=t, bottoms=list(b), tops=list(tp),
                          outputs=[_recorded(o) for o in outs])
            for i, (n, t, b, tp, outs) in enumerate(layers)]
    return ReferenceFile(case=case, attrs={"generator": generator, "layout": "NCHW", "num_layers": len(recs)},
                         inputs={k: np.asarray(v, np.float32) for k, v in inputs.items()}, layers=recs)


def reference_from_builtin(graph: Graph, inputs: Mapping[str, np.ndarray]) -> ReferenceFile:
    """Run the NumPy Caffe-semantics executor; every non-Input layer's outputs, in full."""
    from caffe2tf.verification.reference import run_graph

    values = run_graph(graph, inputs)
    layers = []
    for node in graph.nodes:
        if node.type in INPUT_TYPES:
            continue
        layers.append((node.name, node.type, [graph.values[v].blob for v in node.inputs],
                       [graph.values[v].blob for v in node.outputs], [values[v] for v in node.outputs]))
    return _reference(graph.name, "caffe2tf built-in reference executor", inputs, layers)


def reference_from_pycaffe(prototxt: str, caffemodel: str, inputs: Mapping[str, np.ndarray],
                           caffe: Any = None) -> ReferenceFile:
    """Run live pycaffe layer by layer on ``inputs``; every recorded layer's outputs, in full."""
    try:
        caffe = caffe or dump.import_caffe()
    except ImportError as exc:
        raise InputOptionError(str(exc)) from None
    net = dump.open_net(caffe, prototxt, caffemodel)
    try:
        layers = list(dump.capture_layers(net, dict(inputs)))
    except dump.InputError as exc:
        raise InputOptionError(str(exc)) from None
    version = getattr(caffe, "__version__", "")
    return _reference(str(prototxt), f"pycaffe {version}".strip(), inputs, layers)


# ------------------------------------------------------------------------ the converted model

def _value_arrays(result: Any, model: Any, build: Any, graph: Graph) -> dict[str, Any]:
    """The model's outputs, keyed by value id, whatever container the model returns."""
    if isinstance(result, Mapping):
        by_tensor = {t: v for v, t in (getattr(build, "value_to_tensor_name", None) or {}).items()}
        return {(k if k in graph.values else by_tensor.get(k, k)): t for k, t in result.items()}
    outs = list(result) if isinstance(result, (list, tuple)) else [result]
    names = list(getattr(model, "output_names", None) or [])
    by_tensor = {t: v for v, t in (getattr(build, "value_to_tensor_name", None) or {}).items()}
    keys = [by_tensor.get(n, n) for n in names] if len(names) == len(outs) else list(graph.outputs)
    return dict(zip(keys, outs))


def model_activations(model_or_build: Any, graph: Graph, inputs: Mapping[str, np.ndarray]
                      ) -> dict[str, np.ndarray]:
    """Run the converted Keras model on NCHW ``inputs``; every exposed value as NCHW.

    Args:
        model_or_build: a ``BuildResult`` (``.model``) or a Keras model; built with
            ``outputs="all"`` it exposes every Caffe layer output.
        graph: the graph the model was built from (value ids, input order).
    """
    from caffe2tf.devices import exact_float32
    from caffe2tf.backend.layout import keras_to_nchw, nchw_to_keras

    exact_float32()  # diff and convert --verify both come here: no TF32 on a GPU
    build = model_or_build if hasattr(model_or_build, "model") else None
    model = build.model if build is not None else model_or_build
    layout = getattr(build, "input_layout", "nhwc") if build is not None else "nhwc"
    feed = []
    for vid in graph.inputs:
        blob = graph.values[vid].blob
        arr = np.asarray(inputs[blob] if blob in inputs else inputs[vid], dtype=np.float32)
        feed.append(nchw_to_keras(arr) if layout == "nhwc" else arr)
    result = model(feed if len(feed) > 1 else feed[0], training=False)
    arrays = _value_arrays(result, model, build, graph)
    return {k: keras_to_nchw(np.asarray(t)) for k, t in arrays.items()}
