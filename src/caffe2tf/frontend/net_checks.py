"""The empty-net family: a net that leaves nothing to convert is one error line.

A file with no layers (an empty prototxt), a net whose every layer is excluded by
phase rules, one made only of training layers, one without inputs, and one whose
layers compute nothing from its inputs: each is refused with a one-line
:class:`~caffe2tf.errors.PrototxtError` naming the file, before anything
downstream (inspect's table, the Keras build, the executor) meets an empty list.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from caffe2tf.ir import Graph
from caffe2tf.errors import PrototxtError


@dataclass
class Dropped:
    """What filtering removed, for the message when nothing is left."""
    total: int = 0                   # layers in the file
    by_phase: int = 0                # excluded by include/exclude rules
    training: list[str] | None = None  # training-only types dropped


def check_something_left(layers: Sequence[object], report: Dropped, phase: str, path: str) -> None:
    if layers:
        return
    if report.total == 0:
        raise PrototxtError("defines no layers and no inputs (an empty file, or not a Caffe net definition)",
                            file=path)
    if report.by_phase == report.total:
        raise PrototxtError(f"none of its {report.total} layer(s) runs in the {phase} phase "
                            "(every one is excluded by include/exclude rules)", file=path)
    raise PrototxtError(f"has only training layers ({type_counts(report.training or [])}); "
                        "nothing is left to convert", file=path)


def check_inputs_outputs(graph: Graph, report: Dropped, path: str) -> None:
    if not graph.inputs:
        raise PrototxtError("has no inputs (no Input layer, `input:` field or data layer): "
                            "caffe2tf needs to know what the net is fed", file=path)
    if not graph.outputs:
        dropped = (f" after dropping its training layers ({type_counts(report.training)})"
                   if report.training else "")
        raise PrototxtError(f"computes nothing{dropped}: no layer reads its inputs "
                            f"{[graph.values[v].blob for v in graph.inputs]}", file=path)


def type_counts(types: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for t in types:
        counts[t] = counts.get(t, 0) + 1
    return ", ".join(f"{n} {t}" for t, n in counts.items())
