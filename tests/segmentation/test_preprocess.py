"""Network-input preprocessing and resizing helpers."""
from __future__ import annotations

import numpy as np
import pytest

from caffe2tf.segmentation.preprocess import (PSPNET_PREPROCESSING, Preprocessing,
                                              resize_image, resize_scores, to_net_input)


def test_pspnet_preprocessing_is_bgr_minus_mean():
    img = np.array([[[255, 0, 10], [124, 117, 104]]], dtype=np.uint8)  # RGB
    x = to_net_input(img)
    assert x.dtype == np.float32 and x.shape == (1, 2, 3)
    np.testing.assert_allclose(x[0, 0], [10 - 103.939, 0 - 116.779, 255 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(PSPNET_PREPROCESSING.mean_input_order, [103.939, 116.779, 123.68])
    mean_pixel = np.array([[[123.68, 116.779, 103.939]]], dtype=np.float32)
    np.testing.assert_allclose(to_net_input(mean_pixel), 0.0, atol=1e-5)  # pad value


def test_rgb_order_and_scale_and_batch():
    p = Preprocessing.from_rgb((1.0, 2.0, 3.0), scale=0.5, bgr=False)
    batch = np.full((2, 3, 4, 3), 5, dtype=np.uint8)
    np.testing.assert_allclose(p.to_net_input(batch)[1, 2, 3], [2.0, 1.5, 1.0])
    with pytest.raises(ValueError, match="RGB"):
        p.to_net_input(np.zeros((4, 4), np.uint8))


def test_resize_helpers():
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert resize_image(img, (30, 40)) is img
    assert resize_image(img, (15, 20)).shape == (15, 20, 3)
    scores = np.random.default_rng(1).random((10, 12, 4)).astype(np.float32)
    up = resize_scores(scores, (20, 24))
    assert up.shape == (20, 24, 4) and up.dtype == np.float32
    # bilinear with half-pixel centres: channel means are preserved on a 2x upscale
    np.testing.assert_allclose(up.mean(axis=(0, 1)), scores.mean(axis=(0, 1)), atol=0.02)
    # each channel resized independently
    np.testing.assert_allclose(resize_scores(scores[..., 2:3], (20, 24))[..., 0], up[..., 2])
