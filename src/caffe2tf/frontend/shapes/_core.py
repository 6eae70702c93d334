"""The shape-rule registry and helpers shared by every family of rules."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from caffe2tf import ir
from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.errors import ShapeError
from caffe2tf.registry import Registry

# A dimension is ``None`` only where Caffe's own size depends on the data
# (DetectionOutput's number of rows); every other dimension is a positive int.
Shape = tuple[int, ...]
MAX_ELEMENTS = 2**31 - 1


@dataclass(frozen=True)
class ShapeResult:
    outputs: list[Shape]
    blobs: list[Shape] = field(default_factory=list)


Rule = Callable[[caffe_pb2.LayerParameter, list[Shape]], ShapeResult]
ReadingRule = Callable[[caffe_pb2.LayerParameter, list[Shape], str], ShapeResult]
#: Shape rules by Caffe type; built-ins (defined in caffe2tf) apart from a plug-in's.
SHAPE_RULES: Registry[Rule] = Registry("shape rule")
#: Rules of the type names forks give different meanings, taking the reading too.
READING_RULES: Registry[ReadingRule] = Registry("reading shape rule")


def rule(*types: str, override: bool = False) -> Callable[[Rule], Rule]:
    """Register ``fn(param, in_shapes) -> ShapeResult`` for Caffe type names (a second
    rule for a type is refused unless ``override=True``)."""
    return SHAPE_RULES.decorator(*types, override=override)


def reading_rule(layer_type: str, *, override: bool = False) -> Callable[[ReadingRule], ReadingRule]:
    """Register ``fn(param, in_shapes, reading)`` for a type name that forks give
    different meanings (see :mod:`caffe2tf.frontend.readings`)."""
    def register(fn: ReadingRule) -> ReadingRule:
        def without_reading(param: caffe_pb2.LayerParameter, in_shapes: list[Shape]) -> ShapeResult:
            return infer(param, in_shapes)
        without_reading.__module__ = fn.__module__  # a plug-in's stays a plug-in's
        SHAPE_RULES.register([layer_type], without_reading, override=override)
        READING_RULES.register([layer_type], fn, override=override)
        return fn
    return register


def has_rule(layer_type: str) -> bool:
    return layer_type in SHAPE_RULES


def has_unknown_dim(shape: Sequence[int | None] | None) -> bool:
    """True for an unknown shape or one with a data-dependent (``None``) dimension."""
    return shape is None or any(d is None for d in shape)


def infer(param: caffe_pb2.LayerParameter, in_shapes: list[Shape], reading: str | None = None) -> ShapeResult:
    """Shapes of the tops and blobs of one layer; raises ShapeError on bad parameters.

    ``reading`` is the fork meaning of a clashing type name (``Node.reading``); when
    it is ``None`` for such a type, it is decided from the layer's own parameters
    and bottoms, and a layer that gives no evidence is an error.
    """
    if param.type in READING_RULES:
        from caffe2tf.frontend import readings
        if reading is None:
            reading = readings.reading_from_layer(param, len(in_shapes))
        if reading is None:
            raise ShapeError(f"{param.type}: {readings.undecidable_message(param.type)}")
        result = READING_RULES[param.type](param, in_shapes, reading)
    else:
        result = SHAPE_RULES[param.type](param, in_shapes)
    for s in result.outputs:
        if any(d is not None and d <= 0 for d in s):
            raise ShapeError(f"{param.type} gives an empty output shape {s} from inputs {in_shapes}")
        if math.prod(d for d in s if d is not None) > MAX_ELEMENTS:
            raise ShapeError(f"output shape {s} has more than {MAX_ELEMENTS} elements")
    return result


def canonical_axis(axis: int, rank: int, what: str = "axis") -> int:
    """:func:`caffe2tf.ir.canonical_axis`, a ShapeError out of range."""
    try:
        return ir.canonical_axis(axis, rank)
    except ValueError:
        raise ShapeError(f"{what} {axis} is out of range for a {rank}-D input") from None


def need(in_shapes: list[Shape], n: int | tuple[int, ...], ltype: str) -> None:
    ok = (len(in_shapes) in n) if isinstance(n, tuple) else len(in_shapes) == n
    if not ok:
        raise ShapeError(f"{ltype} takes {n} bottom(s), got {len(in_shapes)}")


def need_4d(x: Shape, ltype: str) -> None:
    if len(x) != 4:
        raise ShapeError(f"{ltype} needs a 4-D input, got {x}")
