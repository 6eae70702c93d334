"""Tolerances for comparing two execution paths of one model.

Two paths (eager vs traced, Keras vs SavedModel, a ``.keras`` reload, another
process, TFLite) run the same arithmetic, but TensorFlow picks kernels per CPU
(oneDNN or Eigen, AVX2 or AVX-512, fused or not) and per thread pool, so their
float32 rounding may differ: on an AVX-512 Xeon the SavedModel and the eager
Keras call differ by one ulp (162.49229 vs 162.49231). No test claims
bit-equality across paths; each states the bound it needs, using these.
"""
from __future__ import annotations

import numpy as np

#: Same graph, same weights, other kernel choice or summation order: a few float32 ulps
#: of the largest magnitude (one ulp is 6e-8 relative; 1e-6 leaves room for a deep sum).
SAME_GRAPH_REL = 1e-6


def max_rel_error(got: object, want: object) -> float:
    """max|got − want| / max(max|want|, 1e-6), the README's measure."""
    g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert g.shape == w.shape, f"shapes differ: {g.shape} vs {w.shape}"
    if g.size == 0:
        return 0.0
    return float(np.max(np.abs(g - w)) / max(float(np.max(np.abs(w))), 1e-6))


def assert_same_graph(got: object, want: object, rel: float = SAME_GRAPH_REL, why: str = "") -> None:
    """``got`` equals ``want`` up to ``rel`` (relative to max|want|)."""
    err = max_rel_error(got, want)
    assert err <= rel, f"max rel error {err:.3g} > {rel:g}" + (f" ({why})" if why else "")
