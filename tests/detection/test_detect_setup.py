"""The detection setup read from a converted model directory (the fake detector, see
detection_helpers): which output, input size, preprocessing, class names, background."""
from __future__ import annotations

import numpy as np
import pytest
from detection_helpers import FAKE_INPUT, FAKE_ROWS, fake_detector, without_detection_layer

from caffe2tf.detection.setup import detection_setup


def test_setup_from_the_record(fake_served):
    setup, why = detection_setup(fake_served)
    assert why == "" and setup is not None
    assert setup.layer == "detection_out" and setup.output_name == "output_0" and setup.input_name == "data"
    assert setup.input_size == FAKE_INPUT and not setup.nchw
    assert setup.num_classes == 3 and setup.background_label == 0  # from the bottoms' shapes
    assert setup.class_names == ["background", "cat", "dog"]
    # the recorded mean is in the net's (BGR) order
    assert setup.preprocessing.bgr and setup.preprocessing.mean_rgb == (123.0, 117.0, 104.0)


def test_net_input_is_the_resized_photo_bgr_minus_mean(fake_served):
    setup, _ = detection_setup(fake_served)
    photo = np.zeros((300, 200, 3), np.uint8)
    photo[..., 0] = 200  # red
    x = setup.net_input(photo)
    assert x.shape == (1, *FAKE_INPUT, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, 5, 5], [0 - 104, 0 - 117, 200 - 123])  # B, G, R minus mean


def test_detect_maps_rows_onto_the_photo(fake_served):
    setup, _ = detection_setup(fake_served, threshold=0.5)
    result = setup.detect(np.zeros((480, 640, 3), np.uint8))
    # the SavedModel adds a zero kernel's products to the bias: rows are the bias exactly or
    # within float32 rounding of a sum of zeros (none), so 1e-6 is generous
    np.testing.assert_allclose(result.rows, FAKE_ROWS, atol=1e-6)
    assert [(d.name, round(d.score, 2)) for d in result.detections] == [("cat", 0.95), ("dog", 0.7)]
    assert result.detections[0].box == pytest.approx((64.0, 96.0, 320.0, 288.0), abs=1e-3)
    assert result.image_size == (480, 640)
    assert len(setup.detect(np.zeros((48, 64, 3), np.uint8), threshold=0.0).detections) == 4


def test_names_without_background_get_it_inserted(tmp_path):
    from caffe2tf.model_dir.served import ServedModel

    d = fake_detector(tmp_path / "m", class_names=["cat", "dog"])
    setup, _ = detection_setup(ServedModel.load(d))
    assert setup.class_names == ["background", "cat", "dog"]
    setup2, _ = detection_setup(ServedModel.load(d), class_names=["bg", "kitty", "puppy"])
    assert setup2.class_names == ["bg", "kitty", "puppy"]


def test_unnamed_classes_and_no_mean(tmp_path):
    from caffe2tf.model_dir.served import ServedModel

    d = fake_detector(tmp_path / "m", mean_bgr=None)
    setup, _ = detection_setup(ServedModel.load(d))
    assert setup.class_names == ["background", "class 1", "class 2"]
    assert any("no mean" in n for n in setup.notes)


def test_a_segmentation_model_is_not_a_detector(tmp_path, fake_dir):
    from caffe2tf.model_dir.served import ServedModel

    setup, why = detection_setup(ServedModel.load(without_detection_layer(fake_dir, tmp_path / "m")))
    assert setup is None and "DetectionOutput" in why
