"""Layer-by-layer diff of a converted model against reference activations, and its verdict.

Every Caffe layer output the model exposes is compared with the reference
(``compare.compare_output``: max abs error, max relative error to max|ref|, mean
abs error, cosine similarity, argmax agreement). The result is data — a
:class:`DiffReport` holding one :class:`LayerDiff` per layer output — rendered
separately by ``report_terminal`` and ``report_html`` (and ``to_dict`` for JSON).

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from caffe2tf.ir import Graph, Node
from caffe2tf.errors import Caffe2TFError
from caffe2tf.verification.compare import (
    ONE_SEMANTIC_TOL, WHOLE_NETWORK_MIN_LAYERS, WHOLE_NETWORK_TOL, Comparison, compare_output, label_map_check)
from caffe2tf.verification.reference_file import RecordedOutput, ReferenceFile
from caffe2tf.verification.sources import INPUT_TYPES

__all__ = ["LayerDiff", "DiffReport", "compare_activations", "verify_conversion", "default_tolerance",
           "diff_net", "amplification_for", "describe_layer", "fmt_err", "ROUNDING_FLOOR", "DEFAULT_AMPLIFICATION",
           "AMPLIFICATION", "STATUSES"]

ROUNDING_FLOOR = 1e-6
DEFAULT_AMPLIFICATION = 30.0
#: Layers that renormalise or cancel, and so can magnify the error they receive.
AMPLIFICATION: dict[str, float] = {t: 100.0 for t in (
    "BN", "BatchNorm", "Scale", "MVN", "LRN", "Normalize", "Softmax", "Eltwise", "Power", "Exp", "Log")}
#: ok: within tolerance; growth: over it through accumulated rounding; propagated: over it
#: downstream of a culprit; culprit: adds error far beyond what it received.
STATUSES = ("ok", "growth", "propagated", "culprit", "not_compared")


def amplification_for(layer_type: str) -> float:
    """How much a correct layer of this type may magnify the relative error it receives."""
    return AMPLIFICATION.get(layer_type, DEFAULT_AMPLIFICATION)


def default_tolerance(num_layers: int) -> tuple[float, str]:
    """(tolerance, why): 1e-5 for nets under 50 layers, 2e-4 from 50 layers on."""
    if num_layers >= WHOLE_NETWORK_MIN_LAYERS:
        return WHOLE_NETWORK_TOL, f"default for nets of {WHOLE_NETWORK_MIN_LAYERS}+ layers; this one has {num_layers}"
    return ONE_SEMANTIC_TOL, f"default for nets under {WHOLE_NETWORK_MIN_LAYERS} layers; this one has {num_layers}"


def fmt_err(x: float | None) -> str:
    """3.1e-2 style (no padded exponent); 0 as "0"; None as "-"."""
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf"
    if x == 0:
        return "0"
    m, e = f"{x:.1e}".split("e")
    m = m[:-2] if m.endswith(".0") else m
    return f"{m}e{int(e)}"


def _pair(rep: Any, h: int, w: int, default: int) -> str:
    vals = list(rep) or ([h, w] if (h or w) else [default])
    return str(vals[0]) if len(set(vals)) == 1 else "x".join(map(str, vals))


def _shape(s: Any) -> str:
    return "x".join(map(str, s)) if s else "?"


def describe_layer(node: Node, graph: Graph | None = None) -> str:
    """The parameters that identify a layer's semantics, e.g. ``AVE, kernel 30 stride 30``."""
    p, t = node.param, node.type
    if t in ("Convolution", "Deconvolution"):
        c = p.convolution_param
        kernel, stride = _pair(c.kernel_size, c.kernel_h, c.kernel_w, 1), _pair(c.stride, c.stride_h, c.stride_w, 1)
        s = f"kernel {kernel} stride {stride}"
        pad, dil = _pair(c.pad, c.pad_h, c.pad_w, 0), _pair(c.dilation, 0, 0, 1)
        s += (f" pad {pad}" if pad != "0" else "") + (f" dilation {dil}" if dil != "1" else "")
        s += f" group {c.group}" if c.group > 1 else ""
        return f"{s}, {c.num_output} outputs"
    if t == "Pooling":
        q = p.pooling_param
        method = q.DESCRIPTOR.fields_by_name["pool"].enum_type.values_by_number[q.pool].name
        if q.global_pooling:
            return f"{method}, global"
        s = f"{method}, kernel {_pair([], q.kernel_h, q.kernel_w, q.kernel_size)} " \
            f"stride {_pair([], q.stride_h, q.stride_w, q.stride)}"
        pad = _pair([], q.pad_h, q.pad_w, q.pad)
        floor = (q.HasField("round_mode") and q.round_mode == q.FLOOR) or (q.HasField("ceil_mode") and not q.ceil_mode)
        return s + (f" pad {pad}" if pad != "0" else "") + (" floor" if floor else "")
    if t == "Interp" and graph is not None:
        src, dst = graph.values[node.inputs[0]].shape, graph.values[node.outputs[0]].shape
        if src and dst and len(src) == 4 and len(dst) == 4:
            return f"{src[2]}x{src[3]} -> {dst[2]}x{dst[3]}"
    if t in ("BN", "BatchNorm"):
        eps = p.bn_param.eps if t == "BN" else p.batch_norm_param.eps
        return f"eps {fmt_err(float(np.float32(eps))) if eps < 1e-2 else f'{eps:g}'}"
    if t == "InnerProduct":
        return f"{p.inner_product_param.num_output} outputs"
    if t == "Eltwise":
        e = p.eltwise_param
        return e.DESCRIPTOR.fields_by_name["operation"].enum_type.values_by_number[e.operation].name
    if t in ("Concat", "Softmax", "Slice", "Flatten", "Crop"):
        sub = {"Concat": p.concat_param, "Softmax": p.softmax_param, "Slice": p.slice_param,
               "Flatten": p.flatten_param, "Crop": p.crop_param}[t]
        return f"axis {sub.axis}"
    return ""


@dataclass(frozen=True)
class LayerDiff:
    """One compared layer output (a layer with several tops gets one per top).

    Attributes:
        depth: position along the network (0-based, execution order).
        name / type / detail: the Caffe layer, and its parameters in words.
        top: the Caffe blob name; ``value``: the graph's SSA value id.
        shape / actual_shape: reference and model shapes (NCHW).
        status: one of :data:`STATUSES`.
        max_abs, max_rel, mean_abs, cosine, argmax_agreement: see ``compare.Comparison``
            (``None`` when not compared; ``inf`` on a shape mismatch).
        input_rel: the largest max_rel of the layer's inputs (0 for net inputs).
        allowed: ``amplification * input_rel + ROUNDING_FLOOR``.
        amplification: the factor used for this layer's type.
        sampled: the reference holds samples, not the full array.
        folded: layers folded into this one (``--folded``).
        note: why it was not compared, or what else to know.
    """

    depth: int
    name: str
    type: str
    detail: str
    top: str
    value: str
    shape: list[int] | None
    actual_shape: list[int] | None
    status: str
    max_abs: float | None = None
    max_rel: float | None = None
    mean_abs: float | None = None
    cosine: float | None = None
    argmax_agreement: float | None = None
    input_rel: float | None = None
    allowed: float | None = None
    amplification: float = DEFAULT_AMPLIFICATION
    sampled: bool = False
    n_compared: int = 0
    folded: tuple[str, ...] = ()
    note: str = ""

    @property
    def gain(self) -> float | None:
        """max_rel / max(input_rel, ROUNDING_FLOOR): how much error this layer added."""
        if self.max_rel is None or self.input_rel is None:
            return None
        return self.max_rel / max(self.input_rel, ROUNDING_FLOOR)

    @property
    def label(self) -> str:
        """``Pooling, AVE, kernel 30 stride 30`` (and ``; folded: bn, scale`` when folded)."""
        text = f"{self.type}, {self.detail}" if self.detail else self.type
        return text + (f"; folded: {', '.join(self.folded)}" if self.folded else "")


@dataclass
class DiffReport:
    """The whole diff: what was compared with what, one record per layer output, the verdict."""

    net: str
    source: str
    source_kind: str
    inputs: str
    tolerance: float
    tolerance_origin: str
    num_layers: int
    folded: bool
    layers: list[LayerDiff]
    not_in_model: list[str] = field(default_factory=list)
    label_maps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def compared(self) -> list[LayerDiff]:
        return [r for r in self.layers if r.status != "not_compared"]

    def layer_diff(self, name: str) -> LayerDiff:
        """The (first) record of the Caffe layer ``name``."""
        for r in self.layers:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def culprits(self) -> list[LayerDiff]:
        return [r for r in self.layers if r.status == "culprit"]

    @property
    def first_divergence(self) -> LayerDiff | None:
        c = self.culprits
        return c[0] if c else None

    @property
    def ok(self) -> bool:
        return self.first_divergence is None

    @property
    def exit_status(self) -> int:
        """0 for a correct conversion, 1 when a layer is wrong."""
        return 0 if self.ok else 1

    @property
    def over_tolerance(self) -> list[LayerDiff]:
        return [r for r in self.compared if r.status != "ok"]

    @property
    def max_rel(self) -> float:
        errs = [r.max_rel for r in self.compared if r.max_rel is not None]
        return max(errs) if errs else 0.0

    @property
    def headline(self) -> str:
        """The verdict in one line."""
        tol, n = fmt_err(self.tolerance), len(self.compared)
        c = self.first_divergence
        if c is not None:
            if c.actual_shape is not None and c.shape is not None and c.actual_shape != c.shape:
                what = f"output shape {_shape(c.actual_shape)}, the reference's is {_shape(c.shape)}"
            elif c.max_rel is None or not math.isfinite(c.max_rel):
                what = "output is not finite"
            else:
                what = f"max rel error {fmt_err(c.max_rel)}"
            agree = "inputs to it agree exactly" if not c.input_rel else f"inputs to it agree to {fmt_err(c.input_rel)}"
            more = f" ({len(self.culprits) - 1} more layer(s) add error further on)" if len(self.culprits) > 1 else ""
            return f"FIRST DIVERGENCE: layer `{c.name}` ({c.label}): {what}; {agree}{more}"
        over = self.over_tolerance
        if not over:
            return f"OK: all {n} layer outputs within {tol}"
        worst = max(over, key=lambda r: r.max_rel or 0.0)
        return (f"OK: no layer adds error beyond float32 rounding; accumulated rounding takes {len(over)} "
                f"of {n} layer outputs past {tol} (largest {fmt_err(worst.max_rel)} at `{worst.name}`)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers become ``null``)."""
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v

        c = self.first_divergence
        return clean({
            "verdict": "ok" if self.ok else "divergence", "headline": self.headline,
            "exit_status": self.exit_status, "net": self.net, "source": self.source,
            "source_kind": self.source_kind, "inputs": self.inputs, "tolerance": self.tolerance,
            "tolerance_origin": self.tolerance_origin, "num_layers": self.num_layers, "folded": self.folded,
            "compared": len(self.compared), "max_rel": self.max_rel,
            "first_divergence": c.name if c else None, "culprits": [r.name for r in self.culprits],
            "rule": {"rounding_floor": ROUNDING_FLOOR, "default_amplification": DEFAULT_AMPLIFICATION,
                     "amplification": AMPLIFICATION},
            "not_in_model": self.not_in_model, "label_maps": self.label_maps,
            "layers": [dict(asdict(r), gain=r.gain) for r in self.layers],
        })


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
    from caffe2tf.backend.build import build_keras_model
    from caffe2tf.passes import run_passes
    from caffe2tf.frontend.reader import load_net
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
        shapes = ", ".join(f"{b} {_shape(a.shape)}" for b, a in inputs.items())
        described = f"the inputs recorded in the reference ({shapes})"
        label = f"{reference_path} ({reference.attrs.get('generator', 'recorded reference')})"
    elif source == "pycaffe":
        reference = src.reference_from_pycaffe(prototxt, caffemodel, inputs, caffe=caffe)
        described, label = options.describe(), f"live Caffe ({reference.attrs['generator']})"
    else:
        reference = src.reference_from_builtin(original, inputs)
        described, label = options.describe(), "built-in reference executor (NumPy, Caffe semantics)"
    graph = run_passes(original, fold=folded)
    build = build_keras_model(graph, outputs="all")
    actual = src.model_activations(build, graph, inputs)
    report = compare_activations(graph, actual, reference, tolerance=tolerance, source=label, source_kind=source,
                                 inputs=described, folded=folded)
    report.net = str(prototxt) if graph.name == Path(prototxt).stem else f"{graph.name} ({prototxt})"
    return report
