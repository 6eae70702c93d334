"""The verification report as data: one :class:`LayerDiff` per compared layer output in a
:class:`DiffReport` with its verdict. :mod:`caffe2tf.verification.diff` makes it (the
algorithm and the culprit rule are documented there); ``report_terminal`` and
``report_html`` render it; ``DiffReport.to_dict`` is the JSON form.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from caffe2tf.ir import Graph, Node
from caffe2tf.verification.compare import Comparison

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


def shape_text(s: Any) -> str:
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
                what = f"output shape {shape_text(c.actual_shape)}, the reference's is {shape_text(c.shape)}"
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
