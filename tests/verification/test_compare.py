"""Tests for caffe2tf.verification.compare."""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe2tf.verification.compare import (
    compare_output, label_map_check, tolerance_for)
from caffe2tf.verification.reference_file import RecordedOutput, output_stats


def _full(a: np.ndarray) -> RecordedOutput:
    return RecordedOutput(shape=a.shape, array=a, stats=output_stats(a))


def test_identical_full() -> None:
    a = np.random.RandomState(0).randn(2, 3, 4, 5).astype(np.float32)
    c = compare_output(a.copy(), _full(a))
    assert c.shape_match and c.max_abs == 0 and c.max_rel == 0 and c.n_compared == a.size
    assert c.cosine == pytest.approx(1.0) and c.argmax_agreement == 1.0
    assert c.passes(1e-5)


def test_rel_uses_ref_abs_max() -> None:
    ref = np.array([[4.0, -8.0]], dtype=np.float32)
    act = ref + np.array([[0.0, 0.008]], dtype=np.float32)
    c = compare_output(act, _full(ref))
    assert c.max_abs == pytest.approx(0.008, rel=1e-4)
    assert c.max_rel == pytest.approx(0.001, rel=1e-4)
    assert c.argmax_agreement is None


def test_zero_reference_floor() -> None:
    ref = np.zeros((1, 4), np.float32)
    c = compare_output(ref + 1e-9, _full(ref))
    assert c.max_rel == pytest.approx(1e-3, rel=1e-3)


def test_shape_mismatch() -> None:
    c = compare_output(np.zeros((1, 2)), _full(np.zeros((2, 1), np.float32)))
    assert not c.shape_match and math.isinf(c.max_rel) and not c.passes(1.0)


def test_sampled_compares_at_indices_and_uses_stat() -> None:
    full = np.random.RandomState(1).randn(1, 3, 8, 8).astype(np.float32)
    idx = np.array([0, 5, 100], np.int64)
    rec = RecordedOutput(shape=full.shape, index=idx, value=full.reshape(-1)[idx],
                         stats={"abs_max": 10.0}, argmax_axis1=full.argmax(axis=1))
    act = full.copy()
    act.reshape(-1)[7] += 100.0  # not sampled: invisible
    act.reshape(-1)[5] += 0.5
    c = compare_output(act, rec)
    assert c.n_compared == 3 and c.max_abs == pytest.approx(0.5)
    assert c.max_rel == pytest.approx(0.05)
    assert c.argmax_agreement is not None and c.argmax_agreement < 1.0


def test_nan_never_passes() -> None:
    ref = np.ones((1, 3), np.float32)
    act = ref.copy()
    act[0, 1] = np.nan
    assert not compare_output(act, _full(ref)).passes(1.0)


def test_tolerance_for() -> None:
    assert tolerance_for("conv_basic", 1) == 1e-5
    assert tolerance_for("/x/y/pspnet50_ade20k_473", 3) == 2e-4
    assert tolerance_for("anything", 50) == 2e-4
    assert tolerance_for("anything", 49) == 1e-5
    assert tolerance_for("/x/res10_ssd_face", 80) == 1e-5  # named by the README: real weights


def test_label_map_check() -> None:
    act = np.zeros((1, 3, 1, 4), np.float32)
    act[0, :, 0, 0] = [1.0, 0.0, 0.0]       # confident class 0
    act[0, :, 0, 1] = [0.0, 1.0, 0.0]       # confident class 1
    act[0, :, 0, 2] = [0.5, 0.5 + 1e-7, 0]  # near tie: class 1 barely
    act[0, :, 0, 3] = [0.0, 0.0, 1.0]
    ref_arg = np.array([[[0, 1, 0, 2]]])
    rec = RecordedOutput(shape=act.shape, index=np.zeros(1, np.int64), value=np.zeros(1),
                         stats={"abs_max": 1.0}, argmax_axis1=ref_arg)
    agreement, violations = label_map_check(act, rec, 1e-5)
    assert agreement == pytest.approx(0.75) and violations == 0
    ref_arg2 = np.array([[[1, 1, 0, 2]]])
    rec2 = RecordedOutput(shape=act.shape, index=np.zeros(1, np.int64), value=np.zeros(1),
                          stats={"abs_max": 1.0}, argmax_axis1=ref_arg2)
    assert label_map_check(act, rec2, 1e-5) == (pytest.approx(0.5), 1)
    with pytest.raises(ValueError):
        label_map_check(np.zeros((1, 3)), rec, 1e-5)
