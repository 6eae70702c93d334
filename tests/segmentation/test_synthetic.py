"""Synthetic rooms."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from caffe2tf.segmentation.synthetic import (SIMPLE_CLASSES, class_names_for,
                                             synthetic_room, write_dataset)


def test_deterministic_and_seed_dependent():
    a, la = synthetic_room(64, 3)
    b, lb = synthetic_room(64, 3)
    c, _ = synthetic_room(64, 4)
    assert (a == b).all() and (la == lb).all()
    assert (a != c).any()


@pytest.mark.parametrize("classes", ["indoor", "simple"])
def test_shapes_and_label_sets(classes):
    n = len(class_names_for(classes))
    seen = np.zeros(n, int)
    for seed in range(20):
        img, lab = synthetic_room((48, 80), seed, classes)
        assert img.shape == (48, 80, 3) and img.dtype == np.uint8
        assert lab.shape == (48, 80) and lab.dtype == np.uint8
        assert lab.max() < n
        seen += np.bincount(lab.ravel(), minlength=n) > 0
        assert {0, 1, 2} <= set(np.unique(lab))  # wall, floor, ceiling always visible
    assert (seen > 0).all()  # every class shows up somewhere
    if classes == "simple":
        assert seen[SIMPLE_CLASSES.index("furniture")] == 20


def test_classes_differ_in_colour():
    """The task is learnable: mean colours of wall/floor/ceiling are far apart."""
    img, lab = synthetic_room(128, 0, "simple")
    means = [img[lab == k].mean(axis=0) for k in range(3)]
    assert min(np.abs(means[i] - means[j]).max() for i in range(3) for j in range(i)) > 20


def test_write_dataset(tmp_path):
    pairs = write_dataset(tmp_path, 3, 32, seed=5, classes="simple")
    assert [p.name for p, _ in pairs] == ["room_00000.png", "room_00001.png", "room_00002.png"]
    img, lab = synthetic_room(32, (5, 1), "simple")
    with Image.open(pairs[1][0]) as im:
        assert (np.asarray(im) == img).all()
    with Image.open(pairs[1][1]) as im:
        assert im.mode == "L" and (np.asarray(im) == lab).all()
    with pytest.raises(ValueError, match="label set"):
        class_names_for("outdoor")
    with pytest.raises(ValueError, match="8x8"):
        synthetic_room(4)
