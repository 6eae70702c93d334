"""Streaming confusion matrix and the semantic-segmentation metrics derived from it.

The matrix ``m`` has ground truth on the rows and prediction on the columns
(scikit-learn's ``confusion_matrix`` convention): ``m[g, p]`` counts pixels of
true class ``g`` predicted as ``p``. Pixels whose ground truth is ``ignore_index``
are skipped. Accumulating batches one by one gives the same matrix as one call on
all of them, so dataset-level numbers are "cumulative" (ADE20K's official
intersection/union summed over the whole set, not averaged per image).

Absent classes
--------------
With ``TP = m[c,c]``, ``GT = m[c,:].sum()``, ``PRED = m[:,c].sum()``, a class is
*present* when ``GT + PRED > 0``. Classes that are absent (no ground truth and
never predicted) are ``NaN`` in every per-class array and are left out of every
mean (``nanmean``). For present classes:

===================  ==============================  ===============================
metric               per class                       0/0 case (present class)
===================  ==============================  ===============================
IoU                  TP / (GT + PRED - TP)           cannot happen
class accuracy       TP / GT                         NaN (predicted, never in GT)
precision            TP / PRED                       0   (in GT, never predicted)
recall               TP / GT                         0   (predicted, never in GT)
F1                   2 TP / (GT + PRED)              cannot happen
===================  ==============================  ===============================

So ``mean_class_accuracy`` is the FCN/PSPNet "mean accuracy" (mean over classes
that occur in the ground truth), while mean precision/recall/F1 equal
scikit-learn's macro averages over the present classes with ``zero_division=0``.
``pixel_accuracy = trace / total`` and ``fw_iou = sum_c (GT_c / total) * IoU_c``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ConfusionMatrix", "SegmentationMetrics"]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    if np.all(np.isnan(values)):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values))


@dataclass(frozen=True)
class SegmentationMetrics:
    """Metrics of one confusion matrix; per-class lists are indexed by class."""

    num_classes: int
    total_pixels: int
    pixel_accuracy: float
    mean_class_accuracy: float
    mean_iou: float
    fw_iou: float
    mean_precision: float
    mean_recall: float
    mean_f1: float
    iou: list[float]
    class_accuracy: list[float]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    gt_pixels: list[int]
    pred_pixels: list[int]

    def to_dict(self, class_names: list[str] | None = None) -> dict:
        """JSON-ready dict (NaN becomes ``None``); adds ``class_names`` when given."""
        def clean(value):  # noqa: ANN001, ANN202 - recursive JSON cleaning
            if isinstance(value, float):
                return None if math.isnan(value) else value
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        out = {k: clean(v) for k, v in asdict(self).items()}
        if class_names is not None:
            if len(class_names) != self.num_classes:
                raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
            out["class_names"] = list(class_names)
        return out

    def present_classes(self) -> list[int]:
        """Indices of classes that occur in the ground truth or the prediction."""
        return [c for c in range(self.num_classes) if self.gt_pixels[c] + self.pred_pixels[c] > 0]


class ConfusionMatrix:
    """Constant-memory streaming confusion matrix (``int64[C, C]``, rows = truth).

    >>> cm = ConfusionMatrix(3)
    >>> cm.update(np.array([[0, 1]]), np.array([[0, 2]]))
    >>> cm.matrix.tolist()
    [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, received {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def reset(self) -> None:
        self.matrix[...] = 0

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one prediction / ground-truth pair (any equal shapes, integer labels).

        Ground-truth ``ignore_index`` pixels are skipped; any other label outside
        ``[0, num_classes)`` in either array raises ``ValueError``.
        """
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"pred shape {pred.shape} != gt shape {gt.shape}")
        gt = gt.ravel().astype(np.int64, copy=False)
        pred = pred.ravel().astype(np.int64, copy=False)
        if self.ignore_index is not None:
            keep = gt != self.ignore_index
            gt, pred = gt[keep], pred[keep]
        if gt.size == 0:
            return
        c = self.num_classes
        for name, arr in (("ground truth", gt), ("prediction", pred)):
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= c:
                bad = lo if lo < 0 else hi
                raise ValueError(f"{name} label {bad} outside [0, {c}) "
                                 f"(ignore_index={self.ignore_index})")
        self.matrix += np.bincount(gt * c + pred, minlength=c * c).reshape(c, c)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix of the same size (e.g. from a parallel worker)."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self.matrix += other.matrix

    def compute(self) -> SegmentationMetrics:
        """All metrics of the accumulated matrix (see the module docstring)."""
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        gt = m.sum(axis=1)
        pred = m.sum(axis=0)
        total = m.sum()
        present = (gt + pred) > 0

        iou = _safe_div(tp, gt + pred - tp)
        class_acc = _safe_div(tp, gt)
        precision = np.where(present, np.nan_to_num(_safe_div(tp, pred)), np.nan)
        recall = np.where(present, np.nan_to_num(_safe_div(tp, gt)), np.nan)
        f1 = _safe_div(2 * tp, gt + pred)

        freq = gt / total if total > 0 else np.zeros_like(gt)
        fw_iou = float(np.nansum(freq * iou)) if total > 0 else math.nan
        return SegmentationMetrics(
            num_classes=self.num_classes,
            total_pixels=int(total),
            pixel_accuracy=float(tp.sum() / total) if total > 0 else math.nan,
            mean_class_accuracy=_nanmean(class_acc),
            mean_iou=_nanmean(iou),
            fw_iou=fw_iou,
            mean_precision=_nanmean(precision),
            mean_recall=_nanmean(recall),
            mean_f1=_nanmean(f1),
            iou=iou.tolist(),
            class_accuracy=class_acc.tolist(),
            precision=precision.tolist(),
            recall=recall.tolist(),
            f1=f1.tolist(),
            gt_pixels=[int(v) for v in self.matrix.sum(axis=1)],
            pred_pixels=[int(v) for v in self.matrix.sum(axis=0)],
        )

    def normalized(self) -> np.ndarray:
        """Row-normalised matrix (each truth row sums to 1; empty rows stay 0)."""
        m = self.matrix.astype(np.float64)
        rows = m.sum(axis=1, keepdims=True)
        return np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
