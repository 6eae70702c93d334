"""Every real-Caffe reference case: convert, run on the recorded inputs, and compare
EVERY recorded top of every recorded layer at the case's tolerance.

Cases are discovered by glob under ``../shared/caffe_reference``; a case whose
caffemodel is not shipped is rebuilt from ``weights.recipe.json`` with
``../shared/tools/synth_caffemodel.py`` into ``.cache/caffe_reference/``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caffe2tf.backend.build import build_keras_model
from caffe2tf.passes import run_passes
from caffe2tf.frontend.reader import load_net
from caffe2tf.backend import layout
from caffe2tf.verification.compare import compare_output, label_map_check, tolerance_for
from caffe2tf.verification.reference_file import read_reference
from pending_cases import marks as pending_marks

REPO = Path(__file__).parents[2]
SHARED = REPO.parent / "shared"
CASES_DIR = SHARED / "caffe_reference"
CACHE = REPO / ".cache" / "caffe_reference"
CASES = sorted(p.parent for p in CASES_DIR.glob("*/net.prototxt"))
WHOLE_NETWORKS = {"pspnet50_ade20k_473"}
# README: "DetectionOutput rows equal within 1e-5" (absolute, same number of rows).
DETECTION_ROWS_ATOL = 1e-5


def caffemodel_for(case: Path) -> Path:
    shipped = case / "weights.caffemodel"
    if shipped.exists():
        return shipped
    out = CACHE / f"{case.name}.caffemodel"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        subprocess.run([sys.executable, str(SHARED / "tools" / "synth_caffemodel.py"),
                        str(case / "weights.recipe.json"), str(tmp)], check=True)
        tmp.replace(out)
    return out


def _param(case: Path):
    marks = [pytest.mark.slow] if case.name in WHOLE_NETWORKS else []
    return pytest.param(case, id=case.name, marks=marks + pending_marks("keras", case.name))


@pytest.mark.skipif(not CASES, reason=f"no reference cases under {CASES_DIR}")
@pytest.mark.parametrize("fold", [False, True], ids=["unfolded", "folded"])
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_reference_case(case: Path, fold: bool):
    """Folded: BN/Scale/Bias are merged into convs, so their (and the conv's pre-BN)
    outputs no longer exist; every output that still exists is compared."""
    original = load_net(case / "net.prototxt", caffemodel_for(case))
    graph = run_passes(original, fold=fold)
    ref = read_reference(case / "reference.h5")
    tol = tolerance_for(case, len(ref.layers))  # res10_ssd_face: 1e-5 per layer (README), despite 50+ layers
    result = build_keras_model(graph, outputs="all")
    feeds = [layout.nchw_to_keras(ref.inputs[graph.values[v].blob]) for v in graph.inputs]
    out = result.model(feeds[0] if len(feeds) == 1 else feeds)
    failures, worst, compared, detections = [], (0.0, ""), 0, []
    expected = 0
    for rec in ref.layers:
        node = original.node(rec.name)
        assert len(node.outputs) == len(rec.outputs), f"{rec.name}: tops differ"
        for t, (vid, recorded) in enumerate(zip(node.outputs, rec.outputs)):
            if vid not in graph.values:  # folded away
                continue
            expected += 1
            actual = layout.keras_to_nchw(np.asarray(out[vid]))
            c = compare_output(actual, recorded)
            if rec.type == "DetectionOutput":
                want = np.asarray(recorded.array)
                rows_err = float(np.max(np.abs(actual - want))) if actual.shape == want.shape else np.inf
                detections.append(f"{rec.name}: {want.shape[2]} rows, max |d| {rows_err:.3g}")
                if not rows_err <= DETECTION_ROWS_ATOL:
                    failures.append(f"{rec.name} (DetectionOutput): rows {actual.shape} vs {want.shape} differ "
                                    f"by more than {DETECTION_ROWS_ATOL}")
            compared += 1
            if c.max_rel > worst[0]:
                worst = (c.max_rel, f"{rec.name} top{t}")
            if not c.passes(tol):
                failures.append(f"{rec.name} ({rec.type}) top{t}: shape_match={c.shape_match} "
                                f"max_rel={c.max_rel:.3g} > {tol}")
            if recorded.argmax_axis1 is not None and vid in graph.outputs:
                agreement, violations = label_map_check(actual, recorded, tol)
                assert violations == 0 and agreement >= 0.9999, (rec.name, agreement, violations)
    print(f"{case.name} ({'folded' if fold else 'unfolded'}): {compared} tops, "
          f"worst max_rel {worst[0]:.3g} at {worst[1]} (tol {tol})" + "".join(f"; {d}" for d in detections))
    assert compared == expected > 0
    if not fold:
        assert compared == sum(len(r.outputs) for r in ref.layers)
    else:
        assert all(v in graph.values for v in graph.outputs)
    assert not failures, "\n".join(failures)
