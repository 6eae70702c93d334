"""PriorBox options the shared cases leave out, against the formulas worked by hand.

Expected boxes are written from weiliu89/caffe's ``prior_box_layer.cpp`` rules
(centre ``(w + offset) * step``, coordinates divided by the image size, min/max
truncated to ints), never from the kernel's own output. They are compared at
1e-6 absolute: Caffe stores float32 coordinates in [0, 1] (or just outside), so
one float32 rounding is below 1.2e-7 there.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from caffe2tf.errors import ShapeError
from caffe2tf.verification.reference import run_node

ATOL = 1e-6


def _priors(make_node, params: str, fmap=(1, 1, 2, 2), image=(1, 3, 100, 100)):
    node = make_node(f'type: "PriorBox" prior_box_param {{ {params} }}', n_in=2)
    (y,) = run_node(node, [np.zeros(fmap, np.float32), np.zeros(image, np.float32)])
    return y


def _box(cx: float, cy: float, w: float, h: float, iw: float, ih: float) -> list[float]:
    return [(cx - w / 2) / iw, (cy - h / 2) / ih, (cx + w / 2) / iw, (cy + h / 2) / ih]


def test_img_size_sets_image_and_default_step(make_node) -> None:
    # 2x2 map, img_size 200 (the 100x100 data blob is ignored): step 100, centres 50 / 150
    y = _priors(make_node, "min_size: 30 max_size: 60 aspect_ratio: 2 flip: true "
                           "img_size: 200 clip: false")
    assert y.shape == (1, 2, 2 * 2 * 4 * 4)
    boxes = y[0, 0].reshape(2, 2, 4, 4)  # (h, w, prior, coord)
    s = math.sqrt(30 * 60)
    r = math.sqrt(2)
    want_cell = lambda cx, cy: [_box(cx, cy, 30, 30, 200, 200), _box(cx, cy, s, s, 200, 200),
                                _box(cx, cy, 30 * r, 30 / r, 200, 200),
                                _box(cx, cy, 30 / r, 30 * r, 200, 200)]
    np.testing.assert_allclose(boxes[0, 0], want_cell(50, 50), atol=ATOL)
    np.testing.assert_allclose(boxes[0, 1], want_cell(150, 50), atol=ATOL)  # w varies fastest
    np.testing.assert_allclose(boxes[1, 0], want_cell(50, 150), atol=ATOL)
    # no variance given: 0.1 everywhere
    np.testing.assert_array_equal(y[0, 1], np.float32(0.1))


def test_several_min_sizes_each_with_its_max_then_ratios(make_node) -> None:
    y = _priors(make_node, "min_size: 10 min_size: 40 max_size: 20 max_size: 90 "
                           "aspect_ratio: 4 flip: false clip: false",
                fmap=(1, 1, 1, 1), image=(1, 3, 100, 100))
    # per min_size: min square, sqrt(min*max) square, then ratio 4 (no flip)
    want = [_box(50, 50, 10, 10, 100, 100),
            _box(50, 50, math.sqrt(200), math.sqrt(200), 100, 100),
            _box(50, 50, 20, 5, 100, 100),
            _box(50, 50, 40, 40, 100, 100),
            _box(50, 50, 60, 60, 100, 100),
            _box(50, 50, 80, 20, 100, 100)]
    np.testing.assert_allclose(y[0, 0].reshape(-1, 4), want, atol=ATOL)


def test_duplicate_ratios_are_dropped_flip_included(make_node) -> None:
    # ratios 2, 2 (dup), 0.5 (dup of flipped 2), 1 (dup of the implicit 1), 3 -> [1, 2, 1/2, 3, 1/3]
    y = _priors(make_node, "min_size: 20 aspect_ratio: 2 aspect_ratio: 2 aspect_ratio: 0.5 "
                           "aspect_ratio: 1 aspect_ratio: 3 flip: true clip: false",
                fmap=(1, 1, 1, 1))
    r2, r3 = math.sqrt(2), math.sqrt(3)
    want = [_box(50, 50, w, h, 100, 100) for w, h in
            [(20, 20), (20 * r2, 20 / r2), (20 / r2, 20 * r2), (20 * r3, 20 / r3),
             (20 / r3, 20 * r3)]]
    np.testing.assert_allclose(y[0, 0].reshape(-1, 4), want, atol=ATOL)


def test_min_and_max_sizes_are_truncated_to_int(make_node) -> None:
    y = _priors(make_node, "min_size: 20.9 max_size: 45.99 clip: false", fmap=(1, 1, 1, 1))
    want = [_box(50, 50, 20, 20, 100, 100),
            _box(50, 50, math.sqrt(20 * 45), math.sqrt(20 * 45), 100, 100)]
    np.testing.assert_allclose(y[0, 0].reshape(-1, 4), want, atol=ATOL)


def test_step_hw_img_hw_offset_and_four_variances(make_node) -> None:
    # 2x3 map; img 60 (h) x 90 (w); steps 25 (h), 20 (w); offset 0 -> centres x 0,20,40 / y 0,25
    y = _priors(make_node, "min_size: 16 img_h: 60 img_w: 90 step_h: 25 step_w: 20 offset: 0 "
                           "clip: false variance: 0.1 variance: 0.2 variance: 0.3 variance: 0.4",
                fmap=(1, 1, 2, 3), image=(1, 3, 7, 7))
    boxes = y[0, 0].reshape(2, 3, 4)
    for h in range(2):
        for w in range(3):
            np.testing.assert_allclose(boxes[h, w], _box(20 * w, 25 * h, 16, 16, 90, 60),
                                       atol=ATOL)
    np.testing.assert_allclose(y[0, 1].reshape(-1, 4), [[0.1, 0.2, 0.3, 0.4]] * 6, atol=1e-7)


def test_clip_clamps_boxes_not_variances(make_node) -> None:
    y = _priors(make_node, "min_size: 80 clip: true variance: 1.5", fmap=(1, 1, 2, 2))
    # centre (25, 25), half size 40: (-15, -15, 65, 65)/100 -> clamped at 0
    np.testing.assert_allclose(y[0, 0, :4], [0.0, 0.0, 0.65, 0.65], atol=ATOL)
    # centre (75, 75): (35, 35, 115, 115)/100 -> clamped at 1
    np.testing.assert_allclose(y[0, 0, 12:16], [0.35, 0.35, 1.0, 1.0], atol=ATOL)
    assert y[0, 0].min() >= 0 and y[0, 0].max() <= 1
    np.testing.assert_array_equal(y[0, 1], np.float32(1.5))


def test_unclipped_boxes_leave_the_unit_square(make_node) -> None:
    y = _priors(make_node, "min_size: 80 clip: false", fmap=(1, 1, 2, 2))
    np.testing.assert_allclose(y[0, 0, :4], [-0.15, -0.15, 0.65, 0.65], atol=ATOL)


@pytest.mark.parametrize("params,match", [
    ("min_size: 30 max_size: 30", "max_size"),
    ("min_size: 30 variance: 0.1 variance: 0.2", "variance"),
    ("min_size: 30 img_size: 100 img_h: 100 img_w: 100", "img_size"),
    ("min_size: 30 step: 8 step_h: 8 step_w: 8", "step"),
    ("min_size: 30 img_h: 100", "img_h"),
    ("aspect_ratio: 2", "min_size"),
])
def test_bad_parameters_are_errors(params: str, match: str, make_node) -> None:
    with pytest.raises(ShapeError, match=match):
        _priors(make_node, params)
