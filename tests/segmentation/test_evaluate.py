"""Folder evaluation end to end, with an oracle network that reads colours."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from caffe2tf.segmentation.classes import make_palette, remap
from caffe2tf.segmentation.errors import SegmentationInputError
from caffe2tf.segmentation.evaluate import evaluate_directory, list_pairs
from caffe2tf.segmentation.preprocess import PSPNET_PREPROCESSING

PALETTE = make_palette(4)
NET_COLOURS = PSPNET_PREPROCESSING.to_net_input(PALETTE[None].astype(np.float32))[0]


def oracle(batch: np.ndarray) -> np.ndarray:
    """Scores = minus squared distance to each class colour (in network input space)."""
    return -((batch[..., None, :] - NET_COLOURS) ** 2).sum(-1)


def make_folder(root, n=4):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        blocks = rng.integers(0, 4, (6, 6)).astype(np.uint8)
        lab = np.kron(blocks, np.ones((8, 8), np.uint8))[:30 + i, :41]  # blocky: JPEG-safe
        lab[:3, :3] = 255
        photo = Image.fromarray(PALETTE[np.minimum(lab, 3)])
        if i == 0:
            photo.save(root / "images" / "im0.jpg", quality=98)
        else:
            photo.save(root / "images" / f"im{i}.png")
        Image.fromarray(lab).save(root / "labels" / f"im{i}.png")


def test_oracle_scores_perfectly(tmp_path):
    make_folder(tmp_path)
    seen = []
    cm = evaluate_directory(tmp_path / "images", tmp_path / "labels", oracle, 4,
                            crop_size=(16, 16), base_size=41, flip=True,
                            on_result=lambda p, r: seen.append((p.name, r.labels)))
    m = cm.compute()
    # im0 is a JPEG: compression may flip a few pixels, the PNGs must be exact
    assert m.mean_iou > 0.97 and m.total_pixels == sum((30 + i) * 41 - 9 for i in range(4))
    assert [name for name, _ in seen] == ["im0.jpg", "im1.png", "im2.png", "im3.png"]
    for name, labels in seen[1:]:
        gt = np.asarray(Image.open(tmp_path / "labels" / name))
        assert (labels == gt)[gt != 255].all()
    # a prediction transform onto 2 classes (0,1 -> 0; 2,3 -> 1)
    cm2 = evaluate_directory(tmp_path / "images", tmp_path / "labels", oracle, 4,
                             crop_size=(16, 16), base_size=41, limit=2,
                             gt_transform=lambda g: remap(g, [0, 0, 1, 1]),
                             pred_transform=lambda p: remap(p, [0, 0, 1, 1]),
                             metric_classes=2)
    assert cm2.num_classes == 2 and cm2.compute().pixel_accuracy > 0.97


def test_missing_labels_are_reported(tmp_path):
    make_folder(tmp_path, n=2)
    (tmp_path / "labels" / "im1.png").unlink()
    with pytest.raises(SegmentationInputError, match="im1.png"):
        list_pairs(tmp_path / "images", tmp_path / "labels")
    with pytest.raises(SegmentationInputError, match="not a directory"):
        list_pairs(tmp_path / "nope", tmp_path / "labels")
    Image.new("L", (5, 5)).save(tmp_path / "labels" / "im1.png")  # wrong size
    with pytest.raises(SegmentationInputError, match="label size"):
        evaluate_directory(tmp_path / "images", tmp_path / "labels", oracle, 4, crop_size=16,
                           base_size=41)
