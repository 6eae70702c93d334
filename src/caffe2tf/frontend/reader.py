"""prototxt + caffemodel -> :class:`~caffe2tf.ir.Graph`.

``load_net`` does, in order:

1. parse the prototxt (``prototxt.py``) and upgrade V1 ``layers`` to V2 ``layer``;
2. turn legacy ``input``/``input_dim``/``input_shape`` fields and Data-type layers
   into ``Input`` nodes;
3. keep the layers Caffe runs in the TEST phase (``include``/``exclude`` rules);
4. give every top a single producer (SSA): an in-place layer's output becomes the
   value ``"<blob>@<layer>"``, its ``Value.blob`` still the Caffe name;
5. upgrade fork aliases of BVLC types (``ConvolutionDepthwise`` -> ``Convolution``)
   and decide the fork reading of clashing type names (``readings.py``: ``BN``,
   ``Upsample``) from the layer's parameters, bottoms and stored blob count;
6. infer every value's NCHW shape (``shapes/``);
7. match the caffemodel's blobs (read through the weights-only view, ``weights.py``)
   to layers by name and bring them to canonical shapes.

A net that leaves nothing to convert (no layers, no inputs, no outputs, only
training layers, every layer excluded by phase rules) is a one-line error.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend import readings
from caffe2tf.frontend import shapes as shape_rules
from caffe2tf.ir import Graph, Node, Value
from caffe2tf.frontend.net_checks import Dropped, check_inputs_outputs, check_something_left, type_counts
from caffe2tf.frontend.prototxt import ParsedPrototxt, parse_prototxt
from caffe2tf.errors import Caffe2TFError, PrototxtError, ShapeError, WeightsError

log = logging.getLogger(__name__)

DATA_LAYER_TYPES = {"Data", "ImageData", "HDF5Data", "MemoryData", "DummyData", "WindowData",
                    "AnnotatedData", "VideoData", "Python_Data"}
TRAINING_ONLY_TYPES = {"Accuracy", "Silence", "HDF5Output"}
# Fork type names for a BVLC Convolution whose group is the input's channel count:
# ConvolutionDepthwise (yonghenglh6/DepthwiseConvolution, BVLC PR #5665; prototxts
# usually leave `group` out) and DepthwiseConvolution (caffe-windows, MobileNet forks).
DEPTHWISE_ALIASES = {"ConvolutionDepthwise", "DepthwiseConvolution"}
FORBIDDEN_TYPES = {"Python": "Python layers run code named by the model file; caffe2tf never executes it "
                             "(write a translator plug-in for this layer instead)"}


@dataclass(frozen=True)
class _Layer:
    param: caffe_pb2.LayerParameter
    line: int | None


def _upgrade_v1(v1: caffe_pb2.V1LayerParameter) -> caffe_pb2.LayerParameter:
    """V1LayerParameter -> LayerParameter (enum type -> type name; same-named params copied)."""
    from caffe2tf.frontend.weights import v1_type_name  # lazily: weights.py imports NumPy

    out = caffe_pb2.LayerParameter(name=v1.name, type=v1_type_name(v1.type))
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    out.include.extend(v1.include)
    out.exclude.extend(v1.exclude)
    out.blobs.extend(v1.blobs)
    for fd, value in v1.ListFields():
        if fd.name.endswith("_param") and fd.name in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name:
            getattr(out, fd.name).CopyFrom(value)
    return out


def _state_meets_rule(rule: caffe_pb2.NetStateRule, state: caffe_pb2.NetState) -> bool:
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(s not in state.stage for s in rule.stage):
        return False
    return not any(s in state.stage for s in rule.not_stage)


def layer_included(layer: caffe_pb2.LayerParameter, state: caffe_pb2.NetState) -> bool:
    """Caffe's Net::FilterNet: include rules (any must match) win over exclude rules."""
    if layer.include:
        return any(_state_meets_rule(r, state) for r in layer.include)
    return not any(_state_meets_rule(r, state) for r in layer.exclude)


def _legacy_inputs(net: caffe_pb2.NetParameter, path: str) -> list[_Layer]:
    if not net.input:
        if net.input_dim or net.input_shape:
            raise PrototxtError("input_dim/input_shape given without an `input` name", file=path)
        return []
    if net.input_shape:
        if len(net.input_shape) != len(net.input):
            raise PrototxtError(f"{len(net.input)} inputs but {len(net.input_shape)} input_shape entries", file=path)
        shapes = [list(s.dim) for s in net.input_shape]
    else:
        if len(net.input_dim) != 4 * len(net.input):
            raise PrototxtError(f"{len(net.input)} inputs need {4 * len(net.input)} input_dim values, "
                                f"got {len(net.input_dim)}", file=path)
        shapes = [list(net.input_dim[4 * i:4 * i + 4]) for i in range(len(net.input))]
    layers = []
    for name, dims in zip(net.input, shapes):
        p = caffe_pb2.LayerParameter(name=name, type="Input", top=[name])
        p.input_param.shape.add().dim.extend(dims)
        layers.append(_Layer(p, None))
    return layers


def _data_layer_shape(p: caffe_pb2.LayerParameter) -> list[int] | None:
    if p.type == "MemoryData":
        m = p.memory_data_param
        return [m.batch_size, m.channels, m.height, m.width]
    if p.type == "DummyData" and p.dummy_data_param.shape:
        return list(p.dummy_data_param.shape[0].dim)
    d = p.dummy_data_param
    if p.type == "DummyData" and d.num and d.channels and d.height and d.width:
        return [d.num[0], d.channels[0], d.height[0], d.width[0]]
    return None


def _to_input(layer: _Layer, input_shapes: Mapping[str, Sequence[int]], path: str) -> _Layer:
    """A Data-type layer becomes an Input of its first top (labels are dropped)."""
    p = layer.param
    top = p.top[0] if p.top else p.name
    dims = list(input_shapes[top]) if top in input_shapes else _data_layer_shape(p)
    if dims is None:
        raise PrototxtError(f"{p.type} layer's input shape is unknown; give it with --input-shape {top}=N,C,H,W",
                            file=path, line=layer.line, layer=p.name)
    new = caffe_pb2.LayerParameter(name=p.name, type="Input", top=[top])
    new.input_param.shape.add().dim.extend(dims)
    if len(p.top) > 1:
        log.warning("%s: %s layer '%s': dropping its label top(s) %s", path, p.type, p.name, list(p.top[1:]))
    return _Layer(new, layer.line)


def _check_dims(dims: Sequence[int], what: str, path: str, layer: _Layer) -> tuple[int, ...]:
    if not dims or any(d <= 0 for d in dims):
        raise ShapeError(f"{what} has a non-positive dimension: {list(dims)}", file=path,
                         line=layer.line, layer=layer.param.name)
    if math.prod(dims) > shape_rules.MAX_ELEMENTS:
        raise ShapeError(f"{what} {list(dims)} has more than {shape_rules.MAX_ELEMENTS} elements; "
                         "this is not a plausible input", file=path, line=layer.line, layer=layer.param.name)
    return tuple(int(d) for d in dims)


def collect_layers(parsed: ParsedPrototxt, input_shapes: Mapping[str, Sequence[int]],
                   state: caffe_pb2.NetState, dropped_report: Dropped | None = None) -> list[_Layer]:
    net, path = parsed.net, parsed.path
    if net.layer and net.layers:
        raise PrototxtError("mixes V1 `layers` and V2 `layer` blocks", file=path)
    lines = [b.line for b in parsed.blocks] or [None] * (len(net.layer) + len(net.layers))
    raw = ([_Layer(_upgrade_v1(l), ln) for l, ln in zip(net.layers, lines)] if net.layers
           else [_Layer(l, ln) for l, ln in zip(net.layer, lines)])
    layers = _legacy_inputs(net, path)
    dropped: set[str] = set()
    report = dropped_report if dropped_report is not None else Dropped()
    report.total, report.training = len(raw), []
    training_names: list[str] = []
    for layer in raw:
        p = layer.param
        if not layer_included(p, state):
            report.by_phase += 1
            continue
        if p.type in FORBIDDEN_TYPES:
            raise PrototxtError(FORBIDDEN_TYPES[p.type], file=path, line=layer.line, layer=p.name)
        if p.type in DATA_LAYER_TYPES:
            layer = _to_input(layer, input_shapes, path)
            dropped.update(p.top[1:])
        elif p.type in TRAINING_ONLY_TYPES or p.type.endswith("Loss"):
            report.training.append(p.type)
            training_names.append(p.name)
            continue
        elif p.type == "Dropout" and p.dropout_param.sample_weights_test:
            raise PrototxtError("Dropout with sample_weights_test: true draws random masks at test time "
                                "(Bayesian SegNet); caffe2tf converts deterministic nets only",
                                file=path, line=layer.line, layer=p.name)
        elif any(b in dropped for b in p.bottom):
            raise PrototxtError(f"uses a label blob of a data layer ({[b for b in p.bottom if b in dropped]})",
                                file=path, line=layer.line, layer=p.name)
        layers.append(layer)
    if training_names:  # one line for all of them
        log.warning("%s: dropping %d training-only layer(s) (%s): %s", path, len(training_names),
                    type_counts(report.training), ", ".join(training_names[:5]) + (" ..." if len(training_names) > 5 else ""))
    return layers


def load_net(prototxt: str | Path, caffemodel: str | Path | None = None, *,
             input_shapes: Mapping[str, Sequence[int]] | None = None,
             allow_unknown_fields: bool = False, phase: str = "TEST", level: int = 0,
             stages: Sequence[str] = (), allow_missing_weights: bool = False) -> Graph:
    """Read a Caffe net into the IR. Raises a :class:`Caffe2TFError` on bad input."""
    parsed = parse_prototxt(prototxt, allow_unknown_fields=allow_unknown_fields)
    path = parsed.path
    state = caffe_pb2.NetState(phase=caffe_pb2.Phase.Value(phase), level=level, stage=list(stages))
    overrides = {k: tuple(v) for k, v in (input_shapes or {}).items()}
    report = Dropped()
    layers = collect_layers(parsed, overrides, state, report)
    check_something_left(layers, report, phase, path)
    stored = None
    if caffemodel is not None:
        from caffe2tf.frontend.weights import read_caffemodel  # lazily: weights.py imports NumPy

        stored = read_caffemodel(caffemodel)
    blob_counts = None if stored is None else {lw.name: len(lw.blobs) for lw in stored if lw.blobs}
    graph = _build_graph(parsed.net.name or Path(path).stem, layers, overrides, path, blob_counts)
    check_inputs_outputs(graph, report, path)
    if stored is not None:
        from caffe2tf.frontend.weights import attach_weights

        attach_weights(graph, stored, str(caffemodel), allow_missing=allow_missing_weights)
    return graph


def _build_graph(name: str, layers: list[_Layer], overrides: Mapping[str, tuple[int, ...]], path: str,
                 blob_counts: Mapping[str, int] | None = None) -> Graph:
    """Nodes, SSA values and shapes. ``blob_counts`` (layer -> blobs stored in the
    caffemodel; ``None`` without one) is evidence for fork readings."""
    values: dict[str, Value] = {}
    produced_by: dict[str, tuple[caffe_pb2.LayerParameter, int]] = {}
    undecided: dict[str, tuple[str, ...]] = {}
    aliases: dict[str, str] = {}
    current: dict[str, str] = {}  # blob name -> id of its latest value
    nodes: list[Node] = []
    seen_names: set[str] = set()
    unknown_types: dict[str, list[str]] = {}
    used_overrides: set[str] = set()
    for layer in layers:
        p = layer.param
        if not p.name:
            raise PrototxtError("a layer has no name", file=path, line=layer.line)
        if p.name in seen_names:
            raise PrototxtError("duplicate layer name", file=path, line=layer.line, layer=p.name)
        seen_names.add(p.name)
        inputs = []
        for b in p.bottom:
            if b not in current:
                raise PrototxtError(f"bottom '{b}' is not produced by any earlier layer "
                                    "(missing producer, or a cycle)", file=path, line=layer.line, layer=p.name)
            inputs.append(current[b])
        in_shapes = [values[v].shape for v in inputs]
        original_type = None
        if p.type in DEPTHWISE_ALIASES and in_shapes and in_shapes[0] is not None:
            original_type, p = p.type, _depthwise_as_convolution(p, in_shapes[0], path, layer.line)
            aliases[p.name] = original_type
        reading = None
        if readings.is_clashing(p.type):
            reading = readings.decide_layer_reading(p, layer.line, inputs, produced_by, blob_counts, path)
            if reading is None:
                undecided[p.name] = tuple(readings.READINGS[p.type])
            else:
                p = _copy(p)
                readings.canonical_param(p, reading)
        out_shapes: list[tuple[int, ...] | None]
        if p.type == "Input":
            out_shapes = _input_shapes(layer, overrides, used_overrides, path)
        elif not shape_rules.has_rule(p.type):
            unknown_types.setdefault(p.type, []).append(p.name)
            out_shapes = [None] * len(p.top)
        elif any(shape_rules.has_unknown_dim(s) for s in in_shapes):
            out_shapes = [None] * len(p.top)
        else:
            try:
                result = shape_rules.infer(p, in_shapes,  # type: ignore[arg-type]
                                           reading if reading is not None or p.name not in undecided
                                           else readings.UNDECIDED)
            except Caffe2TFError as exc:
                raise ShapeError(exc.message, file=path, line=layer.line, layer=p.name) from None
            out_shapes = list(result.outputs)
            if len(out_shapes) != len(p.top):
                raise ShapeError(f"{p.type} produces {len(out_shapes)} output(s) but lists {len(p.top)} top(s)",
                                 file=path, line=layer.line, layer=p.name)
        outputs = []
        for k, (top, shape) in enumerate(zip(p.top, out_shapes)):
            vid = top if top not in current and top not in values else f"{top}@{p.name}"
            values[vid] = Value(id=vid, blob=top, shape=shape)
            current[top] = vid
            produced_by[vid] = (p, k)
            outputs.append(vid)
        param = _copy(p)
        param.ClearField("blobs")
        nodes.append(Node(name=p.name, type=p.type, inputs=tuple(inputs), outputs=tuple(outputs),
                          param=param, line=layer.line, reading=reading, original_type=original_type))
    unused = set(overrides) - used_overrides
    if unused:
        raise PrototxtError(f"--input-shape names {sorted(unused)}, which are not inputs of this net "
                            f"(inputs: {[n.outputs[0] for n in nodes if n.type == 'Input']})", file=path)
    consumed = {v for n in nodes for v in n.inputs}
    graph_inputs = tuple(v for n in nodes if n.type == "Input" for v in n.outputs)
    graph_outputs = tuple(v for n in nodes for v in n.outputs if v not in consumed and v not in graph_inputs)
    graph = Graph(name=name, nodes=nodes, values=values, inputs=graph_inputs, outputs=graph_outputs, source=path)
    graph.metadata["unknown_types"] = unknown_types
    graph.metadata["undecided_readings"] = undecided
    if aliases:
        log.info("%s: %d fork alias layer(s) read as Convolution: %s", path, len(aliases),
                 ", ".join(f"{n} ({t})" for n, t in list(aliases.items())[:5]))
    if undecided:
        log.warning("%s: %d layer(s) of a type forks use with different meanings give no evidence which "
                    "one they are (%s); the caffemodel decides: %s", path, len(undecided),
                    ", ".join(sorted({", ".join(r) for r in undecided.values()})), ", ".join(list(undecided)[:5]))
    return graph


def _copy(p: caffe_pb2.LayerParameter) -> caffe_pb2.LayerParameter:
    out = caffe_pb2.LayerParameter()
    out.CopyFrom(p)
    return out


def _depthwise_as_convolution(p: caffe_pb2.LayerParameter, x: tuple[int, ...], path: str,
                              line: int | None) -> caffe_pb2.LayerParameter:
    """A fork's depthwise type as a BVLC Convolution with group = input channels."""
    out = _copy(p)
    out.type = "Convolution"
    cp = out.convolution_param
    axis = shape_rules.canonical_axis(cp.axis, len(x)) if -len(x) <= cp.axis < len(x) else 1
    channels = x[axis]
    if cp.HasField("group") and cp.group != channels:
        raise ShapeError(f"{p.type} has group {cp.group}, but a depthwise convolution's group is its "
                         f"input channel count {channels}", file=path, line=line, layer=p.name)
    cp.group = channels
    return out


def _input_shapes(layer: _Layer, overrides: Mapping[str, tuple[int, ...]], used: set[str],
                  path: str) -> list[tuple[int, ...] | None]:
    p = layer.param
    declared = [list(s.dim) for s in p.input_param.shape]
    if len(declared) not in (0, 1, len(p.top)):
        raise PrototxtError(f"{len(p.top)} top(s) but {len(declared)} input_param shapes (give one, or one per top)",
                            file=path, line=layer.line, layer=p.name)
    out: list[tuple[int, ...] | None] = []
    for i, top in enumerate(p.top):
        if top in overrides:
            dims = list(overrides[top])
            used.add(top)
        elif declared:
            dims = declared[i] if len(declared) > 1 else declared[0]
        else:
            raise PrototxtError(f"input '{top}' has no shape; give it with --input-shape {top}=N,C,H,W",
                                file=path, line=layer.line, layer=p.name)
        out.append(_check_dims(dims, f"input '{top}'", path, layer))
    return out
