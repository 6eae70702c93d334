"""Rows -> detections (pixels, clipping, threshold, names, Caffe's empty row) and drawing."""
from __future__ import annotations

import numpy as np
import pytest

from caffe2tf.detection.draw import box_colour, draw_detections
from caffe2tf.detection.postprocess import detections_from_rows, rows_from_output

ROWS = np.array([[0, 1, 0.30, 0.05, 0.05, 0.20, 0.25],
                 [0, 2, 0.70, 0.55, -0.10, 1.20, 0.50],
                 [0, 1, 0.95, 0.10, 0.20, 0.50, 0.60],
                 [1, 1, 0.90, 0.00, 0.00, 1.00, 1.00]], np.float32)


def test_rows_from_both_layouts():
    caffe = ROWS[None, None]                     # [1, 1, rows, 7]
    nhwc = ROWS[None, :, :, None]                # the converted model's [1, rows, 7, 1]
    np.testing.assert_array_equal(rows_from_output(caffe), ROWS)
    np.testing.assert_array_equal(rows_from_output(nhwc), ROWS)
    np.testing.assert_array_equal(rows_from_output(ROWS), ROWS)
    assert rows_from_output(np.zeros((1, 1, 0, 7))).shape == (0, 7)
    with pytest.raises(ValueError, match="rows of 7"):
        rows_from_output(np.zeros((1, 5, 6)))


def test_pixels_of_the_photo_clipped_raw_kept_best_first():
    dets = detections_from_rows(ROWS, (200, 400), threshold=0.5, class_names=["bg", "cat", "dog"])
    assert [(d.name, d.score) for d in dets] == [("cat", pytest.approx(0.95)), ("dog", pytest.approx(0.70))]
    cat, dog = dets
    # x scales with the width (400), y with the height (200)
    assert cat.box == pytest.approx((40.0, 40.0, 200.0, 120.0), abs=1e-4)
    # the dog leaves the image: clipped for drawing, the network's values kept as they were
    assert dog.box == pytest.approx((220.0, 0.0, 400.0, 100.0), abs=1e-4)
    assert dog.box_normalized == pytest.approx((0.55, -0.10, 1.20, 0.50), abs=1e-6)
    doc = dog.to_json()
    assert doc["box"] == {"xmin": 220.0, "ymin": 0.0, "xmax": 400.0, "ymax": 100.0}
    assert doc["box_normalized"]["xmax"] == pytest.approx(1.2, abs=1e-6)
    assert doc["label"] == 2 and doc["name"] == "dog" and doc["image"] == 0


def test_threshold_image_and_unknown_names():
    assert len(detections_from_rows(ROWS, (10, 10), threshold=0.0)) == 3  # image 0 only
    assert len(detections_from_rows(ROWS, (10, 10), threshold=0.0, image=None)) == 4
    assert [d.image for d in detections_from_rows(ROWS, (10, 10), image=1)] == [1]
    assert detections_from_rows(ROWS, (10, 10), threshold=0.96) == []
    assert {d.name for d in detections_from_rows(ROWS, (10, 10))} == {"class 1", "class 2"}


def test_boxes_wholly_outside_the_image_are_dropped_unless_asked():
    rows = np.array([[0, 1, 0.9, 4.1, 4.0, 4.8, 4.9],     # res10 writes rows like this one
                     [0, 1, 0.8, -0.5, 0.2, -0.1, 0.4],
                     [0, 1, 0.7, 0.9, 0.9, 1.3, 1.4]], np.float32)
    dets = detections_from_rows(rows, (100, 100))
    assert [d.score for d in dets] == [pytest.approx(0.7)] and dets[0].box == pytest.approx((90, 90, 100, 100))
    kept = detections_from_rows(rows, (100, 100), keep_outside=True)
    assert len(kept) == 3 and kept[0].box == (100.0, 100.0, 100.0, 100.0)


def test_caffe_nothing_found_row_is_no_detection():
    empty = np.array([[[[0, -1, -1, -1, -1, -1, -1]]]], np.float32)
    assert detections_from_rows(empty, (300, 300), threshold=0.0) == []


def test_drawing_marks_the_box_in_its_colour_and_leaves_the_rest():
    image = np.full((120, 160, 3), 40, np.uint8)
    dets = detections_from_rows(np.array([[0, 1, 0.9, 0.25, 0.5, 0.75, 0.9]], np.float32), (120, 160),
                                class_names=["bg", "face"])
    out = draw_detections(image, dets)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, image) and (image == 40).all()
    colour = np.array([int(box_colour(1)[i:i + 2], 16) for i in (1, 3, 5)])
    x0, y0, x1, y1 = 40, 60, 120, 108
    assert (out[80, x0] == colour).all() and (out[80, x1 - 1] == colour).all()  # left and right edges
    assert (out[y1 - 1, 80] == colour).all()                                    # bottom edge
    assert (out[84, 80] == 40).all()                                            # inside: untouched
    assert (out[5:50, 130:] == 40).all() and (out[112:, :] == 40).all()         # far away: untouched
    assert (out[y0 - 4, x0 + 2:x0 + 20] != 40).any()                            # the label above the box
