"""ConfusionMatrix / SegmentationMetrics against scikit-learn."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix,
                             f1_score, jaccard_score, precision_score, recall_score)

from caffe2tf.segmentation.metrics import ConfusionMatrix

IGNORE = 255


def random_maps(seed: int, num_classes: int = 8, shape=(3, 40, 50)):
    """Random gt/pred with ignored pixels; class 6 never occurs anywhere (absent),
    class 5 only in gt (never predicted), class 7 only predicted (never in gt)."""
    rng = np.random.default_rng(seed)
    gt = rng.choice([0, 1, 2, 3, 4, 5], size=shape, p=[.3, .25, .2, .1, .1, .05])
    pred = np.where(rng.random(shape) < 0.6, gt, rng.choice([0, 1, 2, 3, 4, 7], size=shape))
    pred = np.where(pred == 5, 0, pred)
    gt = np.where(rng.random(shape) < 0.1, IGNORE, gt)
    pred = np.where(gt == IGNORE, rng.choice([0, IGNORE], size=shape), pred)  # anything goes
    return gt, pred


def sk_inputs(gt, pred):
    keep = gt != IGNORE
    return gt[keep].ravel(), pred[keep].ravel()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_against_sklearn(seed):
    c = 8
    gt, pred = random_maps(seed, c)
    cm = ConfusionMatrix(c, ignore_index=IGNORE)
    cm.update(pred, gt)
    m = cm.compute()
    y, p = sk_inputs(gt, pred)
    assert (cm.matrix == confusion_matrix(y, p, labels=list(range(c)))).all()

    present = sorted(set(y) | set(p))
    assert present == m.present_classes() == [0, 1, 2, 3, 4, 5, 7]
    assert math.isnan(m.iou[6]) and math.isnan(m.precision[6]) and math.isnan(m.f1[6])

    iou = jaccard_score(y, p, labels=present, average=None, zero_division=0)
    np.testing.assert_allclose(np.array(m.iou)[present], iou, rtol=1e-12)
    assert m.iou[5] == 0.0 and m.iou[7] == 0.0  # present but never right
    np.testing.assert_allclose(m.mean_iou, iou.mean(), rtol=1e-12)

    for ours, ours_mean, fn in ((m.precision, m.mean_precision, precision_score),
                                (m.recall, m.mean_recall, recall_score),
                                (m.f1, m.mean_f1, f1_score)):
        ref = fn(y, p, labels=present, average=None, zero_division=0)
        np.testing.assert_allclose(np.array(ours)[present], ref, rtol=1e-12)
        np.testing.assert_allclose(
            ours_mean, fn(y, p, labels=present, average="macro", zero_division=0), rtol=1e-12)

    np.testing.assert_allclose(m.pixel_accuracy, accuracy_score(y, p), rtol=1e-12)
    # mean class accuracy = mean recall over classes that occur in the ground truth
    with pytest.warns(UserWarning):  # sklearn warns that class 7 is not in y_true
        bal = balanced_accuracy_score(y, p)
    np.testing.assert_allclose(m.mean_class_accuracy, bal, rtol=1e-12)
    assert math.isnan(m.class_accuracy[7]) and m.recall[7] == 0.0

    gt_count = np.bincount(y, minlength=c)
    fw = sum(gt_count[k] / y.size * iou[i] for i, k in enumerate(present))
    np.testing.assert_allclose(m.fw_iou, fw, rtol=1e-12)
    assert m.total_pixels == y.size
    assert m.gt_pixels == gt_count.tolist()


def test_streaming_equals_one_shot():
    gt, pred = random_maps(7, 8, shape=(6, 33, 17))
    one = ConfusionMatrix(8)
    one.update(pred, gt)
    streamed = ConfusionMatrix(8)
    for i in range(gt.shape[0]):
        streamed.update(pred[i], gt[i])
    assert (one.matrix == streamed.matrix).all()
    assert one.compute().to_dict() == streamed.compute().to_dict()  # NaN-free form
    merged = ConfusionMatrix(8)
    halves = [ConfusionMatrix(8), ConfusionMatrix(8)]
    halves[0].update(pred[:3], gt[:3])
    halves[1].update(pred[3:], gt[3:])
    for h in halves:
        merged.merge(h)
    assert (merged.matrix == one.matrix).all()


def test_hand_example():
    gt = np.array([[0, 0, 1, 1], [2, 2, IGNORE, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = ConfusionMatrix(4)
    cm.update(pred, gt)
    assert cm.matrix.tolist() == [[1, 1, 0, 0], [0, 3, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    m = cm.compute()
    assert m.pixel_accuracy == pytest.approx(5 / 7)
    assert m.iou[:3] == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert math.isnan(m.iou[3])  # class 3: no gt, no prediction -> excluded
    assert m.mean_iou == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert m.mean_class_accuracy == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert cm.normalized()[0].tolist() == [0.5, 0.5, 0, 0]
    assert cm.normalized()[3].tolist() == [0, 0, 0, 0]


def test_empty_and_all_ignored_give_nan():
    cm = ConfusionMatrix(3)
    cm.update(np.zeros((2, 2), int), np.full((2, 2), IGNORE))
    m = cm.compute()
    assert m.total_pixels == 0
    assert all(math.isnan(v) for v in (m.pixel_accuracy, m.mean_iou, m.fw_iou, m.mean_f1))
    json.dumps(m.to_dict())  # NaN -> null, still valid JSON


def test_to_dict_is_json_with_names():
    gt, pred = random_maps(3)
    cm = ConfusionMatrix(8)
    cm.update(pred, gt)
    d = json.loads(json.dumps(cm.compute().to_dict([f"c{i}" for i in range(8)]), allow_nan=False))
    assert d["iou"][6] is None and d["class_names"][7] == "c7"
    with pytest.raises(ValueError):
        cm.compute().to_dict(["too", "few"])


@pytest.mark.parametrize("pred,gt,msg", [
    (np.array([0, 3]), np.array([0, 1]), "prediction label 3"),
    (np.array([0, 1]), np.array([0, 7]), "ground truth label 7"),
    (np.array([0, -1]), np.array([0, 1]), "prediction label -1"),
    (np.array([0, 1]), np.array([0, 1, 2]), "shape"),
])
def test_bad_labels_raise(pred, gt, msg):
    with pytest.raises(ValueError, match=msg):
        ConfusionMatrix(3).update(pred, gt)


def test_no_ignore_index():
    cm = ConfusionMatrix(3, ignore_index=None)
    with pytest.raises(ValueError, match="255"):
        cm.update(np.array([0]), np.array([255]))
