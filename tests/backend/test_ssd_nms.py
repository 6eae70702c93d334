"""DetectionOutput's two NMS forms give the same kept set: the pairwise fixed point (used
when eta == 1) against the candidate-by-candidate loop (Caffe's ApplyNMSFast order), on
dense clusters of overlapping boxes where suppression chains are long, with invalid and
zero-size boxes mixed in. Exact equality, on any CPU: the output is booleans, and both forms
compare overlaps from the same ``_overlap`` (elementwise min / max / sub / mul / div, each an
IEEE-exact op with no reduction, so no kernel choice or summation order can change a value)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from caffe2tf.backend.layers.ssd import CaffeDetectionOutput


def _candidates(rng: np.random.Generator, n: int, c: int, k: int) -> np.ndarray:
    centre = rng.uniform(0.3, 0.7, (n, c, k, 2))                 # one dense cluster per class
    size = rng.uniform(0.0, 0.3, (n, c, k, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=-1)
    flip = rng.random((n, c, k)) < 0.05                           # some invalid (xmax < xmin)
    boxes[flip] = boxes[flip][:, [2, 1, 0, 3]]
    boxes[rng.random((n, c, k)) < 0.03] = 0.5                     # some zero-size
    return boxes.astype(np.float32)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.45, 0.7, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_nms_equals_sequential(threshold: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c, k = 2, 3, 60
    layer = CaffeDetectionOutput(num_classes=c + 1, num_priors=k, nms_threshold=threshold, top_k=k,
                                 background_label_id=0, confidence_threshold=0.01)
    assert len(layer.classes) == c
    cand = tf.constant(_candidates(rng, n, c, k))
    n_valid = tf.constant(rng.integers(0, k + 1, (n, c)), tf.int32)
    pairwise = layer._nms(cand, n_valid, k).numpy()
    sequential = layer._nms_sequential(cand, n_valid, k).numpy()
    np.testing.assert_array_equal(pairwise, sequential)
    if 0.0 < threshold <= 0.45:  # the clusters really suppress here: a wrong order would show
        assert 0 < pairwise.sum() < n_valid.numpy().sum()


def test_large_problems_fall_back_to_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = CaffeDetectionOutput(num_classes=2, num_priors=10, nms_threshold=0.45, top_k=10)
    called = []
    monkeypatch.setattr(CaffeDetectionOutput, "PAIRWISE_LIMIT", 0)
    monkeypatch.setattr(CaffeDetectionOutput, "_nms_sequential",
                        lambda self, *a: called.append(a) or tf.zeros([1, 1, 10], tf.bool))
    layer._nms(tf.zeros([1, 1, 10, 4]), tf.constant([[3]]), 10)
    assert called
