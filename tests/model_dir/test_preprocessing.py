"""The one Preprocessing: the mean kept in the net's channel order, both orders exposed, and
the photo -> net input arithmetic for BGR and RGB nets."""
from __future__ import annotations

import numpy as np
import pytest

from caffe2tf.model_dir.preprocessing import IMAGENET_MEAN_BGR, PSPNET_PREPROCESSING, Preprocessing

PIXEL_RGB = np.array([[[10, 20, 30]]], dtype=np.uint8)  # R=10, G=20, B=30


def test_bgr_net_subtracts_the_mean_in_bgr_order():
    p = Preprocessing(mean=(1.0, 2.0, 3.0), bgr=True)  # B=1, G=2, R=3
    assert p.mean_rgb == (3.0, 2.0, 1.0)
    np.testing.assert_array_equal(p.mean_input_order, np.float32([1, 2, 3]))
    np.testing.assert_array_equal(p.to_net_input(PIXEL_RGB)[0, 0], [30 - 1, 20 - 2, 10 - 3])


def test_rgb_net_keeps_the_photo_order():
    p = Preprocessing(mean=(1.0, 2.0, 3.0), scale=2.0, bgr=False)
    assert p.mean_rgb == (1.0, 2.0, 3.0)
    np.testing.assert_array_equal(p.to_net_input(PIXEL_RGB)[0, 0], [2 * (10 - 1), 2 * (20 - 2), 2 * (30 - 3)])


@pytest.mark.parametrize("bgr", [True, False])
def test_from_rgb_and_the_mean_colour_maps_to_zero(bgr):
    p = Preprocessing.from_rgb((10.0, 20.0, 30.0), bgr=bgr)
    assert p.mean_rgb == (10.0, 20.0, 30.0)
    assert p.mean == ((30.0, 20.0, 10.0) if bgr else (10.0, 20.0, 30.0))
    np.testing.assert_array_equal(p.to_net_input(PIXEL_RGB), np.zeros((1, 1, 3), np.float32))


def test_json_form_is_the_records():
    p = Preprocessing(mean=(103.939, 116.779, 123.68), scale=0.017, bgr=True)
    assert p.to_json() == {"mean": [103.939, 116.779, 123.68], "scale": 0.017, "bgr": True}
    assert list(p.to_json()) == ["mean", "scale", "bgr"]
    assert Preprocessing.from_json(p.to_json()) == p
    assert Preprocessing.from_json({}) == Preprocessing(mean=None, scale=1.0, bgr=True)
    assert Preprocessing.from_json({"mean": [1, 2, 3], "scale": None}).scale == 1.0
    assert Preprocessing().to_json() == {"mean": None, "scale": 1.0, "bgr": True}


def test_for_photos_fills_in_the_imagenet_mean_in_the_nets_order():
    assert Preprocessing(bgr=True).for_photos().mean == IMAGENET_MEAN_BGR
    rgb = Preprocessing(scale=0.5, bgr=False).for_photos()
    assert rgb.mean == IMAGENET_MEAN_BGR[::-1] and rgb.mean_rgb == IMAGENET_MEAN_BGR[::-1] and rgb.scale == 0.5
    assert Preprocessing(mean=(1, 2, 3)).for_photos() == Preprocessing(mean=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="2 values"):
        Preprocessing(mean=(1.0, 2.0)).for_photos()
    with pytest.raises(ValueError, match="no mean"):
        Preprocessing().to_net_input(PIXEL_RGB)
    assert PSPNET_PREPROCESSING.mean_rgb == (123.68, 116.779, 103.939)


def test_overrides():
    p = Preprocessing(mean=(1.0, 2.0, 3.0), scale=1.0, bgr=True)
    assert p.with_overrides() == p
    flipped = p.with_overrides(bgr=False)  # the same photo colour still maps to 0
    assert flipped.mean_rgb == p.mean_rgb == (3.0, 2.0, 1.0) and flipped.mean == (3.0, 2.0, 1.0)
    given = p.with_overrides(mean=(7.0, 8.0, 9.0), bgr=False, scale=0.5)  # given in the new net order
    assert given == Preprocessing(mean=(7.0, 8.0, 9.0), scale=0.5, bgr=False)
    assert Preprocessing().with_overrides(bgr=False, scale=2.0) == Preprocessing(mean=None, scale=2.0, bgr=False)
