"""The NumPy reference executor against every real-Caffe case in ../shared/caffe_reference.

Each case: load the net with its weights, run the executor on the recorded
inputs and compare every recorded output (each top of each layer) at the
case's tolerance (1e-5 one-semantic, 2e-4 whole networks; the README holds
``res10_ssd_face``, a whole net of real weights, to 1e-5 per layer too, its
DetectionOutput rows included). Whole networks also get the README's label-map
rule on their final 4-D output.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from caffe2tf.ir import Node
from caffe2tf.frontend.reader import load_net
from caffe2tf.verification.compare import (
    LABEL_MAP_MIN_AGREEMENT, compare_output, label_map_check, tolerance_for)
from caffe2tf.verification.reference import run_graph
from caffe2tf.verification.reference_file import RecordedLayer, read_reference
from pending_cases import marks as pending_marks

SHARED_REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "caffe_reference"
WHOLE_NETWORK_PREFIXES = ("pspnet",)


def _case_params() -> list[object]:
    params: list[object] = []
    for case in sorted(p.parent for p in SHARED_REFERENCE.glob("*/net.prototxt")):
        slow = case.name.startswith(WHOLE_NETWORK_PREFIXES)
        marks = ([pytest.mark.slow] if slow else []) + pending_marks("executor", case.name)
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


CASES = _case_params()


def test_cases_found() -> None:
    assert CASES, f"no reference cases under {SHARED_REFERENCE}"


@pytest.mark.parametrize("case_dir", CASES)
def test_reference_executor_matches_caffe(case_dir: Path,
                                          case_caffemodel: Callable[[str | Path], Path]) -> None:
    ref = read_reference(case_dir / "reference.h5")
    graph = load_net(case_dir / "net.prototxt", case_caffemodel(case_dir))
    tol = tolerance_for(
        case_dir, int(ref.attrs.get("num_layers", len(ref.layers))))
    recorded: dict[str, RecordedLayer] = {rec.name: rec for rec in ref.layers}
    missing = [name for name in recorded if not any(n.name == name for n in graph.nodes)]
    assert not missing, f"recorded layers absent from the graph: {missing}"

    failures: list[str] = []
    compared: set[str] = set()
    worst = (0.0, "")
    final: dict[str, object] = {}

    def check(node: Node, outputs: list[np.ndarray]) -> None:
        nonlocal worst
        rec = recorded.get(node.name)
        if rec is None:
            return
        assert len(rec.outputs) == len(outputs), node.name
        for t, (actual, expected) in enumerate(zip(outputs, rec.outputs)):
            c = compare_output(actual, expected)
            if not c.passes(tol):
                failures.append(f"{node.name} ({node.type}) top{t}: max_rel {c.max_rel:.3g}, "
                                f"shape {actual.shape} vs {expected.shape}")
            if c.max_rel > worst[0]:
                worst = (c.max_rel, f"{node.name} top{t}")
        compared.add(node.name)
        if rec is ref.layers[-1]:
            final["actual"], final["recorded"] = outputs[0], rec.outputs[0]

    start = time.perf_counter()
    run_graph(graph, ref.inputs, collect=False, on_node=check)
    elapsed = time.perf_counter() - start
    print(f"{case_dir.name}: worst max_rel {worst[0]:.3g} at {worst[1]} (tol {tol:g}), "
          f"{elapsed:.1f}s")
    assert compared == set(recorded), f"never ran: {sorted(set(recorded) - compared)}"
    assert not failures, "\n".join(failures)

    recorded_final = final.get("recorded")
    actual_final = final.get("actual")
    if (case_dir.name.startswith(WHOLE_NETWORK_PREFIXES) and recorded_final is not None
            and len(recorded_final.shape) == 4 and recorded_final.shape[1] > 1):
        agreement, violations = label_map_check(actual_final, recorded_final, tol)
        assert violations == 0, f"{violations} confident pixels disagree with Caffe's label map"
        assert agreement >= LABEL_MAP_MIN_AGREEMENT, f"label-map agreement {agreement:.6f}"
