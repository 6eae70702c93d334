"""Layer-by-layer diff of a converted model against reference activations, and its verdict.

Every Caffe layer output the model exposes is compared with the reference
(``compare.compare_output``: max abs error, max relative error to max|ref|, mean
abs error, cosine similarity, argmax agreement). The result is data — a
:class:`DiffReport` holding one :class:`LayerDiff` per layer output — defined in
:mod:`caffe2tf.verification.report` and rendered separately by ``report_terminal`` and
``report_html`` (and ``to_dict`` for JSON).

The culprit rule (``docs/verification.md``). Float32 rounding grows with depth,
so a layer is judged by the error it *adds*: with ``e_in`` the largest relative
error of its inputs (0 for the net's inputs) and ``e_out`` its own, a layer is a
**culprit** when ::

    e_out > tolerance  and  e_out > amplification(type) * e_in + ROUNDING_FLOOR

or when its output has the wrong shape or is not finite while its inputs are
fine. ``amplification`` is 30 for most layers and 100 for layers that
renormalise (BN with a small variance multiplies incoming error 10-15x) or can
cancel (Eltwise). An output over the tolerance that is not a culprit is
``growth`` (accumulated rounding) or ``propagated`` (downstream of a culprit).
The verdict names the first culprit in execution order; without one the
conversion is correct (exit 0), whatever the accumulated growth.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from caffe2tf.ir import Graph
from caffe2tf.errors import Caffe2TFError
from caffe2tf.verification.compare import (
    ONE_SEMANTIC_TOL, WHOLE_NETWORK_MIN_LAYERS, WHOLE_NETWORK_TOL, Comparison, compare_output, label_map_check)
from caffe2tf.verification.reference_file import RecordedOutput, ReferenceFile
from caffe2tf.verification.report import (AMPLIFICATION, DEFAULT_AMPLIFICATION, ROUNDING_FLOOR, STATUSES, DiffReport,
                                          LayerDiff, amplification_for, describe_layer, fmt_err, shape_text)
from caffe2tf.verification.sources import INPUT_TYPES

__all__ = ["LayerDiff", "DiffReport", "compare_activations", "verify_conversion", "default_tolerance",
           "diff_net", "amplification_for", "describe_layer", "fmt_err", "ROUNDING_FLOOR", "DEFAULT_AMPLIFICATION",
           "AMPLIFICATION", "STATUSES"]


def default_tolerance(num_layers: int) -> tuple[float, str]:
    """(tolerance, why): 1e-5 for nets under 50 layers, 2e-4 from 50 layers on."""
    if num_layers >= WHOLE_NETWORK_MIN_LAYERS:
        return WHOLE_NETWORK_TOL, f"default for nets of {WHOLE_NETWORK_MIN_LAYERS}+ layers; this one has {num_layers}"
    return ONE_SEMANTIC_TOL, f"default for nets under {WHOLE_NETWORK_MIN_LAYERS} layers; this one has {num_layers}"


def _compare(actual: np.ndarray, rec: RecordedOutput) -> Comparison:
    """``compare_output``, gathering a sampled reference's points straight from a transposed
    (NHWC-backed) view: flattening such a view would copy the whole array first."""
    actual = np.asarray(actual)
    if not rec.is_sampled or actual.flags.c_contiguous or tuple(actual.shape) != tuple(rec.shape):
        return compare_output(actual, rec)
    assert rec.index is not None
    picked = actual[np.unravel_index(rec.index, actual.shape)]
    flat = RecordedOutput(shape=picked.shape, index=np.arange(picked.size), value=rec.value,
                          stats={"abs_max": rec.abs_max})
    agreement = None
    if rec.argmax_axis1 is not None and actual.ndim == 4:
        agreement = float(np.mean(np.argmax(actual, axis=1) == rec.argmax_axis1))
    return replace(compare_output(picked, flat), argmax_agreement=agreement)


def compare_activations(graph: Graph, actual: Mapping[str, np.ndarray], reference: ReferenceFile, *,
                        tolerance: float | None = None, source: str = "", source_kind: str = "file",
                        inputs: str = "", folded: bool | None = None) -> DiffReport:
    """Compare the model's activations (value id -> NCHW) with ``reference``; apply the culprit rule.

    Graph nodes are matched to reference layers by name (a node with folded layers
    by the last one folded into it, whose outputs it now produces).

    Raises:
        Caffe2TFError: the reference shares no layer output with the model.
    """
    if tolerance is None:
        tolerance, origin = default_tolerance(len(reference.layers))
    else:
        origin = "given with --tolerance"
    folded = any(n.folded for n in graph.nodes) if folded is None else folded
    recorded = {(rec.name, t): out for rec in reference.layers for t, out in enumerate(rec.outputs)}
    err: dict[str, float] = {}          # value id -> max_rel (estimated where not compared)
    tainted: set[str] = set()           # values downstream of a culprit
    rows: list[LayerDiff] = []
    matched: set[str] = set()
    for node in graph.nodes:
        if node.type in INPUT_TYPES:
            err.update(dict.fromkeys(node.outputs, 0.0))
            continue
        ref_name = node.folded[-1] if node.folded else node.name
        e_in = max((err.get(v, 0.0) for v in node.inputs), default=0.0)
        amp = amplification_for(node.type)
        allowed = amp * e_in + ROUNDING_FLOOR
        upstream_bad = any(v in tainted for v in node.inputs)
        detail = describe_layer(node, graph)
        for k, vid in enumerate(node.outputs):
            rec = recorded.get((ref_name, k))
            arr = actual.get(vid)
            base = dict(depth=len(rows), name=node.name, type=node.type, detail=detail,
                        top=graph.values[vid].blob, value=vid, amplification=amp, folded=node.folded,
                        input_rel=e_in, allowed=allowed)
            if rec is None or arr is None:
                err[vid] = e_in
                if upstream_bad:
                    tainted.add(vid)
                note = "not in the reference" if rec is None else "the model does not expose it"
                shape = list(rec.shape) if rec is not None else None
                rows.append(LayerDiff(**base, shape=shape, actual_shape=None, status="not_compared", note=note))
                continue
            matched.add(ref_name)
            c = _compare(arr, rec)
            e_out = math.inf if math.isnan(c.max_rel) else c.max_rel
            err[vid] = e_out
            if math.isfinite(e_in) and (not c.shape_match or not math.isfinite(e_out)
                                        or (e_out > tolerance and e_out > allowed)):
                status = "culprit"
            elif e_out > tolerance or not c.shape_match:
                status = "propagated" if upstream_bad else "growth"
            else:
                status = "ok"
            if status in ("culprit", "propagated"):
                tainted.add(vid)
            rows.append(LayerDiff(**base, shape=list(rec.shape), actual_shape=list(np.shape(arr)), status=status,
                                  max_abs=c.max_abs, max_rel=e_out, mean_abs=c.mean_abs, cosine=c.cosine,
                                  argmax_agreement=c.argmax_agreement, sampled=rec.is_sampled,
                                  n_compared=c.n_compared,
                                  note=f"compared with the output of {ref_name}" if node.folded else ""))
    if not matched:
        raise Caffe2TFError(f"the reference ({source or reference.case}) shares no layer output with the net "
                            f"'{graph.name}': is it a recording of this net?", file=graph.source)
    folded_away = {f for n in graph.nodes for f in n.folded}
    missing = [r.name for r in reference.layers if r.name not in matched and r.name not in folded_away
               and r.name not in {n.name for n in graph.nodes}]
    report = DiffReport(net=graph.name, source=source or reference.case, source_kind=source_kind, inputs=inputs,
                        tolerance=float(tolerance), tolerance_origin=origin, num_layers=len(reference.layers),
                        folded=folded, layers=rows, not_in_model=missing)
    report.label_maps = _label_maps(graph, actual, recorded, tolerance)
    return report


def _label_maps(graph: Graph, actual: Mapping[str, np.ndarray], recorded: Mapping[tuple[str, int], Any],
                tol: float) -> list[dict[str, Any]]:
    """The README's label-map rule at the net's 4-D multi-channel outputs (information)."""
    out = []
    for vid in graph.outputs:
        node = graph.producer(vid)
        if node is None or vid not in actual:
            continue
        rec = recorded.get((node.folded[-1] if node.folded else node.name, node.outputs.index(vid)))
        a = actual[vid]
        if rec is None or np.ndim(a) != 4 or np.shape(a)[1] < 2 or tuple(np.shape(a)) != tuple(rec.shape):
            continue
        try:
            agreement, violations = label_map_check(a, rec, tol)
        except ValueError:
            continue
        out.append({"top": graph.values[vid].blob, "agreement": agreement, "violations": violations,
                    "passes": violations == 0 and agreement >= 0.9999})
    return out


def verify_conversion(graph: Graph, model: Any = None, *, reference_graph: Graph | None = None,
                      inputs: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                      tolerance: float | None = None) -> DiffReport:
    """The built-in diff of a converted model on a random input (``convert --verify``).

    Args:
        graph: the graph the model was built from (folded or not).
        model: a ``BuildResult`` or Keras model built from ``graph``; ``None`` builds
            one with every layer output exposed. A model exposing only the net's
            outputs is compared at those alone.
        reference_graph: the graph the built-in executor runs (pass the unfolded
            graph to check folding too); defaults to ``graph``.
        inputs: blob -> NCHW arrays; by default standard-normal, seeded with ``seed``.
    Returns:
        the :class:`DiffReport` (``report.ok``, ``report.headline``).
    """
    from caffe2tf.verification.sources import (
        InputOptions, declared_input_shapes, make_inputs, model_activations, reference_from_builtin)

    ref_graph = reference_graph or graph
    if inputs is None:
        inputs = make_inputs(declared_input_shapes(ref_graph), InputOptions(seed=seed))
    if model is None:
        from caffe2tf.backend.build import build_keras_model

        model = build_keras_model(graph, outputs="all")
    reference = reference_from_builtin(ref_graph, inputs)
    actual = model_activations(model, graph, inputs)
    return compare_activations(graph, actual, reference, tolerance=tolerance, source="built-in reference executor",
                               source_kind="builtin", inputs=f"random (standard normal, seed {seed})")


def diff_net(prototxt: str, caffemodel: str, *, source: str = "builtin", reference_path: str | None = None,
             input_options: Any = None, tolerance: float | None = None, folded: bool = False,
             input_shapes: Mapping[str, tuple[int, ...]] | None = None, allow_unknown_fields: bool = False,
             caffe: Any = None) -> DiffReport:
    """``caffe2tf diff``: convert the net with every layer output exposed and compare it with a reference.

    Args:
        source: ``"file"`` (``reference_path``; its recorded inputs are used),
            ``"pycaffe"`` or ``"builtin"`` (inputs from ``input_options``).
        input_options: a :class:`~caffe2tf.verification.sources.InputOptions`.
        folded: diff the folded model (BN/Scale merged), compared where outputs still exist.
        caffe: the pycaffe module to use (tests inject a stand-in).
    Raises:
        Caffe2TFError: bad input (unreadable net or reference, bad input options).
    """
    from caffe2tf.frontend.reader import load_net
    from caffe2tf.pipeline import lower
    from caffe2tf.verification import sources as src

    options = input_options or src.InputOptions()
    original = load_net(prototxt, caffemodel, input_shapes=input_shapes, allow_unknown_fields=allow_unknown_fields)
    declared = src.declared_input_shapes(original)
    if source == "file":
        if options.specs or options.mean or options.bgr or options.resize or options.scale != 1.0:
            raise src.InputOptionError("--input and the preprocessing flags cannot be used with --reference: "
                                       "the reference file holds the inputs Caffe saw")
        reference = src.reference_from_file(str(reference_path))
        if set(reference.inputs) != set(declared):
            raise src.InputOptionError(f"the reference's inputs {sorted(reference.inputs)} are not the net's "
                                       f"inputs {sorted(declared)}", file=str(reference_path))
        inputs = reference.inputs
    else:
        inputs = src.make_inputs(declared, options)
    changed = {b: tuple(a.shape) for b, a in inputs.items() if tuple(a.shape) != declared[b]}
    if changed:  # an input of another size: infer the net's shapes for it
        original = load_net(prototxt, caffemodel, input_shapes={**(input_shapes or {}), **changed},
                            allow_unknown_fields=allow_unknown_fields)
    if source == "file":
        shapes = ", ".join(f"{b} {shape_text(a.shape)}" for b, a in inputs.items())
        described = f"the inputs recorded in the reference ({shapes})"
        label = f"{reference_path} ({reference.attrs.get('generator', 'recorded reference')})"
    elif source == "pycaffe":
        reference = src.reference_from_pycaffe(prototxt, caffemodel, inputs, caffe=caffe)
        described, label = options.describe(), f"live Caffe ({reference.attrs['generator']})"
    else:
        reference = src.reference_from_builtin(original, inputs)
        described, label = options.describe(), "built-in reference executor (NumPy, Caffe semantics)"
    lowered = lower(prototxt, caffemodel, folded, outputs="all", original=original)
    graph, build = lowered.graph, lowered.build
    actual = src.model_activations(build, graph, inputs)
    report = compare_activations(graph, actual, reference, tolerance=tolerance, source=label, source_kind=source,
                                 inputs=described, folded=folded)
    report.net = str(prototxt) if graph.name == Path(prototxt).stem else f"{graph.name} ({prototxt})"
    return report
