"""Compare an output with a recorded reference output.

The error measure of ``../shared/caffe_reference/README.md``::

    max_rel = max|actual - ref| / max(max|ref|, 1e-6)

where ``max|ref|`` comes from the full recorded array, or from the recorded
``abs_max`` statistic when the output was sampled (the comparison itself is
then made at the recorded flat indices only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caffe2tf.verification.reference_file import RecordedOutput

__all__ = ["Comparison", "compare_output", "tolerance_for", "label_map_check",
           "ONE_SEMANTIC_TOL", "WHOLE_NETWORK_TOL", "LABEL_MAP_MIN_AGREEMENT"]

ONE_SEMANTIC_TOL = 1e-5
WHOLE_NETWORK_TOL = 2e-4
WHOLE_NETWORK_MIN_LAYERS = 50
#: Cases whose tolerance the reference README states by name, overriding the size rule:
#: res10_ssd_face is a whole network of real trained weights, held to 1e-5 per layer
#: (real Caffe against itself: worst 5.8e-7).
NAMED_CASE_TOL = {"res10_ssd_face": ONE_SEMANTIC_TOL}
LABEL_MAP_MIN_AGREEMENT = 0.9999


@dataclass(frozen=True)
class Comparison:
    """Result of comparing one output with its reference.

    Attributes:
        max_abs: max|Δ| over the compared elements.
        max_rel: ``max_abs / max(max|ref|, 1e-6)`` (``inf`` on shape mismatch).
        mean_abs: mean|Δ|.
        cosine: cosine similarity of the compared elements (1.0 if both zero).
        argmax_agreement: fraction of pixels whose channel argmax equals the
            reference's, for 4-D multi-channel outputs; else ``None``.
        n_compared: number of elements compared.
        shape_match: whether the actual shape equals the recorded one.
    """

    max_abs: float
    max_rel: float
    mean_abs: float
    cosine: float
    argmax_agreement: float | None
    n_compared: int
    shape_match: bool

    def passes(self, tol: float) -> bool:
        """True when shapes match and ``max_rel <= tol`` (NaN never passes)."""
        return self.shape_match and bool(self.max_rel <= tol)


def _reference_argmax(recorded: RecordedOutput) -> np.ndarray | None:
    if recorded.argmax_axis1 is not None:
        return recorded.argmax_axis1
    if recorded.array is not None and recorded.array.ndim == 4 and recorded.array.shape[1] > 1:
        return np.argmax(recorded.array, axis=1)
    return None


def compare_output(actual_nchw: np.ndarray, recorded: RecordedOutput) -> Comparison:
    """Compare an NCHW output with a recorded one (full or sampled)."""
    actual = np.asarray(actual_nchw)
    if tuple(actual.shape) != tuple(recorded.shape):
        return Comparison(math.inf, math.inf, math.inf, math.nan, None, 0, False)
    if recorded.is_sampled:
        assert recorded.index is not None and recorded.value is not None
        a = actual.reshape(-1)[recorded.index].astype(np.float64)
        r = recorded.value.astype(np.float64)
    else:
        assert recorded.array is not None
        a = actual.reshape(-1).astype(np.float64)
        r = recorded.array.reshape(-1).astype(np.float64)
    ref_abs_max = recorded.abs_max
    if a.size:
        diff = np.abs(a - r)
        max_abs = float(diff.max())
        mean_abs = float(diff.mean())
    else:
        max_abs = mean_abs = 0.0
    max_rel = max_abs / max(ref_abs_max, 1e-6)
    na, nr = float(np.linalg.norm(a)), float(np.linalg.norm(r))
    if na == 0.0 and nr == 0.0:
        cosine = 1.0
    elif na == 0.0 or nr == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.dot(a, r) / (na * nr))
    agreement = None
    ref_arg = _reference_argmax(recorded)
    if ref_arg is not None and actual.ndim == 4:
        agreement = float(np.mean(np.argmax(actual, axis=1) == ref_arg))
    return Comparison(max_abs, max_rel, mean_abs, cosine, agreement, int(a.size), True)


def tolerance_for(case_dir_or_name: str | Path, num_layers: int) -> float:
    """The README's per-output tolerance for a case.

    2e-4 for whole networks (case name starting with ``pspnet`` or 50+ layers),
    1e-5 for every one-semantic case, and what the README names for a case
    (:data:`NAMED_CASE_TOL`).
    """
    name = Path(str(case_dir_or_name)).name
    if name in NAMED_CASE_TOL:
        return NAMED_CASE_TOL[name]
    if name.startswith("pspnet") or num_layers >= WHOLE_NETWORK_MIN_LAYERS:
        return WHOLE_NETWORK_TOL
    return ONE_SEMANTIC_TOL


def label_map_check(actual_nchw: np.ndarray, recorded: RecordedOutput,
                    tol: float) -> tuple[float, int]:
    """The README's label-map rule for 4-D multi-channel outputs.

    Wherever the actual output's own top-2 channel margin exceeds
    ``2 * tol * max|actual|``, its argmax must equal the recorded
    ``argmax_axis1``.

    Returns:
        ``(agreement, violations)``: fraction of pixels whose argmax equals the
        reference, and the number of confident pixels that disagree. A pass
        is ``violations == 0 and agreement >= 0.9999``.

    Raises:
        ValueError: the output is not 4-D multi-channel or the shapes differ.
    """
    actual = np.asarray(actual_nchw)
    ref_arg = _reference_argmax(recorded)
    if ref_arg is None or actual.ndim != 4 or tuple(actual.shape) != tuple(recorded.shape):
        raise ValueError("label-map check needs a 4-D multi-channel output of the recorded shape")
    arg = np.argmax(actual, axis=1)
    agree = arg == ref_arg
    top2 = np.partition(actual, actual.shape[1] - 2, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    abs_max = float(np.max(np.abs(actual))) if actual.size else 0.0
    confident = margin > 2.0 * tol * abs_max
    violations = int(np.count_nonzero(confident & ~agree))
    return float(np.mean(agree)), violations
