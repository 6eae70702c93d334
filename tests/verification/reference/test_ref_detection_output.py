"""DetectionOutput options the shared cases leave out, with hand-derived expectations.

Boxes are chosen so decoding and Jaccard overlaps are simple fractions; the
expected rows follow weiliu89/caffe's ``detection_output_layer.cpp`` /
``bbox_util.cpp`` rules. Coordinates are compared at 1e-6 absolute (Caffe works
in float32 on values near [0, 1]; one rounding is below 1.2e-7), labels and
image indices exactly.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe2tf.errors import ShapeError
from caffe2tf.verification.reference import run_node

ATOL = 1e-6


def _prior_blob(boxes, variance=(0.1, 0.1, 0.2, 0.2)) -> np.ndarray:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    var = np.tile(np.asarray(variance, np.float32), (len(boxes), 1))
    return np.stack([boxes.reshape(-1), var.reshape(-1)])[None]


def _run(make_node, params: str, loc, conf, priors) -> np.ndarray:
    node = make_node(f'type: "DetectionOutput" detection_output_param {{ {params} }}', n_in=3)
    loc = np.asarray(loc, np.float32)
    conf = np.asarray(conf, np.float32)
    (y,) = run_node(node, [loc.reshape(loc.shape[0], -1), conf.reshape(conf.shape[0], -1),
                           priors])
    assert y.shape[:2] == (1, 1) and y.shape[3] == 7
    return y[0, 0]


# Three priors used as-is (CORNER, variance in target, zero offsets decode to the prior):
# A and B overlap with IoU 0.45 (B inside A), C overlaps nothing.
A = [0.0, 0.0, 0.4, 0.4]
B = [0.0, 0.0, 0.4, 0.18]          # area 0.072 inside A (0.16): IoU 0.072 / 0.16 = 0.45
C = [0.6, 0.6, 0.9, 0.9]
IDENTITY = "code_type: CORNER variance_encoded_in_target: true share_location: true"


def _scores(*per_prior: tuple[float, ...]) -> np.ndarray:
    return np.asarray([per_prior], np.float32)  # (1, P, classes)


@pytest.mark.parametrize("eta,kept", [(1.0, [A, C, B]), (0.7, [A, C])])
def test_adaptive_eta(eta: float, kept, make_node) -> None:
    # nms 0.6: B (IoU 0.45 with A) survives; with eta 0.7 the threshold drops to 0.42
    # once A is kept (0.6 > 0.5), so B is suppressed.
    params = (f"num_classes: 2 background_label_id: 0 {IDENTITY} "
              f"nms_param {{ nms_threshold: 0.6 eta: {eta} }}")
    rows = _run(make_node, params, np.zeros((1, 3, 4)),
                _scores((0.1, 0.9), (0.3, 0.7), (0.2, 0.8)), _prior_blob([A, B, C]))
    np.testing.assert_allclose(rows[:, 3:], kept, atol=ATOL)
    np.testing.assert_array_equal(rows[:, :2], [[0, 1]] * len(kept))


def test_eta_stops_at_half(make_node) -> None:
    # nms 0.5, eta 0.5: the threshold only shrinks while it is above 0.5, so it stays 0.5
    # and B (0.45 <= 0.5) is kept
    params = (f"num_classes: 2 {IDENTITY} nms_param {{ nms_threshold: 0.5 eta: 0.5 }}")
    rows = _run(make_node, params, np.zeros((1, 3, 4)),
                _scores((0.1, 0.9), (0.3, 0.7), (0.2, 0.8)), _prior_blob([A, B, C]))
    np.testing.assert_allclose(rows[:, 2], [0.9, 0.8, 0.7], atol=ATOL)


def test_top_k_before_nms_and_strict_threshold(make_node) -> None:
    # scores 0.9 (A), 0.5 (C: equal to the threshold, so dropped), 0.7 (B);
    # top_k 1 keeps only A before NMS.
    params = (f"num_classes: 2 {IDENTITY} confidence_threshold: 0.5 "
              "nms_param { nms_threshold: 0.5 top_k: 1 }")
    rows = _run(make_node, params, np.zeros((1, 3, 4)),
                _scores((0.1, 0.9), (0.3, 0.7), (0.5, 0.5)), _prior_blob([A, B, C]))
    np.testing.assert_allclose(rows, [[0, 1, 0.9] + A], atol=ATOL)
    params = params.replace("top_k: 1", "top_k: 5")
    rows = _run(make_node, params, np.zeros((1, 3, 4)),
                _scores((0.1, 0.9), (0.3, 0.7), (0.5, 0.5)), _prior_blob([A, B, C]))
    np.testing.assert_allclose(rows[:, 2], [0.9, 0.7], atol=ATOL)  # 0.5 is not > 0.5


def test_keep_top_k_over_classes_then_grouped_by_label(make_node) -> None:
    # class 1: A 0.6, C 0.3; class 2: B 0.9, C 0.5 -> best three: B/2 0.9, A/1 0.6, C/2 0.5
    params = (f"num_classes: 3 {IDENTITY} keep_top_k: 3 nms_param {{ nms_threshold: 0.45 }}")
    rows = _run(make_node, params, np.zeros((1, 3, 4)),
                _scores((0.1, 0.6, 0.0), (0.0, 0.0, 0.9), (0.0, 0.3, 0.5)),
                _prior_blob([A, B, C]))
    want = [[0, 1, 0.6] + A, [0, 2, 0.9] + B, [0, 2, 0.5] + C]
    np.testing.assert_allclose(rows, want, atol=ATOL)


def test_background_label_is_skipped(make_node) -> None:
    # label 1 is the background here; label 0 and 2 are real classes
    params = (f"num_classes: 3 background_label_id: 1 {IDENTITY} "
              "nms_param { nms_threshold: 0.45 } confidence_threshold: 0.1")
    rows = _run(make_node, params, np.zeros((1, 2, 4)),
                _scores((0.2, 0.99, 0.0), (0.0, 0.99, 0.3)), _prior_blob([A, C]))
    np.testing.assert_allclose(rows, [[0, 0, 0.2] + A, [0, 2, 0.3] + C], atol=ATOL)


PRIOR = [0.2, 0.2, 0.6, 0.4]       # width 0.4, height 0.2, centre (0.4, 0.3)
VAR = (0.1, 0.2, 0.5, 0.25)
LOC = [1.0, -2.0, 0.5, 2.0]


@pytest.mark.parametrize("code,in_target,want", [
    # CORNER: prior + var * loc
    ("CORNER", False, [0.2 + 0.1, 0.2 - 0.4, 0.6 + 0.25, 0.4 + 0.5]),
    ("CORNER", True, [0.2 + 1.0, 0.2 - 2.0, 0.6 + 0.5, 0.4 + 2.0]),
    # CORNER_SIZE: prior + var * loc * (prior width | height)
    ("CORNER_SIZE", False, [0.2 + 0.1 * 0.4, 0.2 - 0.4 * 0.2, 0.6 + 0.25 * 0.4,
                            0.4 + 0.5 * 0.2]),
    ("CORNER_SIZE", True, [0.2 + 0.4, 0.2 - 0.4, 0.6 + 0.2, 0.4 + 0.4]),
    # CENTER_SIZE: centre += var*loc*size, size *= exp(var*loc); not clipped
    ("CENTER_SIZE", False, None),
    ("CENTER_SIZE", True, None),
])
def test_decoding(code: str, in_target: bool, want, make_node) -> None:
    if want is None:
        v = (1.0,) * 4 if in_target else VAR
        cx, cy = 0.4 + v[0] * LOC[0] * 0.4, 0.3 + v[1] * LOC[1] * 0.2
        w, h = 0.4 * math.exp(v[2] * LOC[2]), 0.2 * math.exp(v[3] * LOC[3])
        want = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    params = (f"num_classes: 2 code_type: {code} "
              f"variance_encoded_in_target: {'true' if in_target else 'false'} "
              "nms_param { nms_threshold: 0.45 }")
    rows = _run(make_node, params, [[LOC]], _scores((0.2, 0.8)), _prior_blob([PRIOR], VAR))
    np.testing.assert_allclose(rows, [[0, 1, 0.8] + want], atol=ATOL)


def test_per_class_locations_without_share_location(make_node) -> None:
    # loc per prior: [background (ignored), class 1, class 2], CORNER with variance in target
    loc = [[[9, 9, 9, 9], [0.1, 0.0, 0.1, 0.0], [0.0, 0.2, 0.0, 0.2]]]
    params = ("num_classes: 3 share_location: false code_type: CORNER "
              "variance_encoded_in_target: true nms_param { nms_threshold: 0.45 } "
              "confidence_threshold: 0.1")
    rows = _run(make_node, params, loc, _scores((0.1, 0.6, 0.3)), _prior_blob([A]))
    want = [[0, 1, 0.6, 0.1, 0.0, 0.5, 0.4], [0, 2, 0.3, 0.0, 0.2, 0.4, 0.6]]
    np.testing.assert_allclose(rows, want, atol=ATOL)


def test_empty_and_batch_conventions(make_node) -> None:
    params = f"num_classes: 2 {IDENTITY} confidence_threshold: 0.5 nms_param {{ nms_threshold: 0.45 }}"
    priors = _prior_blob([A, C])
    low = np.asarray([[(0.9, 0.1), (0.8, 0.2)]] * 2, np.float32)
    rows = _run(make_node, params, np.zeros((2, 2, 4)), low, priors)
    np.testing.assert_array_equal(rows, [[0, -1, -1, -1, -1, -1, -1],
                                         [1, -1, -1, -1, -1, -1, -1]])
    mixed = low.copy()
    mixed[1, 1] = (0.3, 0.7)  # only image 1, prior C
    rows = _run(make_node, params, np.zeros((2, 2, 4)), mixed, priors)
    np.testing.assert_allclose(rows, [[1, 1, 0.7] + C], atol=ATOL)


def test_sizes_must_agree(make_node) -> None:
    node = make_node('type: "DetectionOutput" detection_output_param { num_classes: 2 }', n_in=3)
    with pytest.raises(ShapeError, match="priors"):
        run_node(node, [np.zeros((1, 8), np.float32), np.zeros((1, 6), np.float32),
                        _prior_blob([A, C])])
