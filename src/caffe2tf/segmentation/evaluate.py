"""Evaluate a segmentation model over a folder of images and label PNGs.

Pairs are matched by file stem (``images/x.jpg`` <-> ``labels/x.png``). Each image
goes through :func:`~caffe2tf.segmentation.protocol.segment_image` and its label map
is accumulated in a :class:`~caffe2tf.segmentation.metrics.ConfusionMatrix`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from pathlib import Path

import numpy as np
from PIL import Image

from caffe2tf.segmentation.errors import SegmentationInputError
from caffe2tf.segmentation.metrics import ConfusionMatrix
from caffe2tf.segmentation.protocol import LogitsFn, SegmentationResult, segment_image
from caffe2tf.segmentation.visualize import read_label_png

__all__ = ["IMAGE_SUFFIXES", "list_pairs", "read_rgb", "read_pair", "keras_logits_fn", "evaluate_directory",
           "evaluate_pairs"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def list_pairs(images_dir: str | Path, labels_dir: str | Path) -> list[tuple[Path, Path]]:
    """(image, label) pairs matched by stem, sorted by name.

    Raises :class:`SegmentationInputError` when a folder is missing, holds no
    images, or an image has no ``<stem>.png`` label.
    """
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise SegmentationInputError("not a directory", file=str(folder))
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SegmentationInputError(f"no images ({', '.join(IMAGE_SUFFIXES)})",
                                     file=str(images_dir))
    pairs, missing = [], []
    for image in images:
        label = labels_dir / f"{image.stem}.png"
        if label.is_file():
            pairs.append((image, label))
        else:
            missing.append(image.name)
    if missing:
        raise SegmentationInputError(f"no label PNG for {len(missing)} image(s), "
                                     f"e.g. {missing[0]}", file=str(labels_dir))
    return pairs


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 ``[H, W, 3]`` (greyscale/alpha converted)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def keras_logits_fn(model, output_index: int = 0) -> LogitsFn:  # noqa: ANN001 - keras.Model
    """A ``logits_fn`` running a Keras model (NHWC in, ``[n, h, w, C]`` out).

    For multi-output models, ``output_index`` picks the score output.
    """
    def run(batch: np.ndarray) -> np.ndarray:
        out = model.predict_on_batch(batch)
        if isinstance(out, (list, tuple)):
            out = out[output_index]
        elif isinstance(out, dict):
            out = list(out.values())[output_index]
        return np.asarray(out, dtype=np.float32)
    return run


def evaluate_directory(images_dir: str | Path, labels_dir: str | Path, logits_fn: LogitsFn,
                       num_classes: int, *, ignore_index: int = 255,
                       gt_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                       pred_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                       metric_classes: int | None = None, limit: int | None = None,
                       on_result: Callable[[Path, SegmentationResult], None] | None = None,
                       **protocol: Any) -> ConfusionMatrix:
    """Segment every image and return the accumulated confusion matrix.

    ``protocol`` is passed to :func:`segment_image` (``crop_size``, ``base_size``,
    ``scales``, ``flip``, ``softmax``, ...). ``gt_transform`` maps stored labels to
    metric labels (e.g. ``ade20k_annotation_to_index``), ``pred_transform`` maps
    predicted labels (e.g. ``lambda p: remap(p, indoor_mapping())``); with a
    ``pred_transform`` that changes the label set, pass its size as
    ``metric_classes``. ``on_result(image_path, result)`` sees every prediction.
    """
    pairs = list_pairs(images_dir, labels_dir)[:limit]
    confusion = evaluate_pairs(pairs, logits_fn, num_classes, ignore_index=ignore_index, gt_transform=gt_transform,
                               pred_transform=pred_transform, metric_classes=metric_classes, on_result=on_result,
                               **protocol)
    log.info("evaluated %d images from %s", len(pairs), images_dir)
    return confusion


def read_pair(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An image (RGB uint8) and its stored label map, checked to have the same size."""
    image = read_rgb(image_path)
    gt = read_label_png(label_path)
    if gt.shape != image.shape[:2]:
        raise SegmentationInputError(f"label size {gt.shape} != image size "
                                     f"{image.shape[:2]} of {Path(image_path).name}",
                                     file=str(label_path))
    return image, gt


def evaluate_pairs(pairs: list[tuple[Path, Path]], logits_fn: LogitsFn, num_classes: int, *,
                   ignore_index: int = 255,
                   gt_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                   pred_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                   metric_classes: int | None = None,
                   on_result: Callable[[Path, SegmentationResult], None] | None = None,
                   **protocol: Any) -> ConfusionMatrix:
    """:func:`evaluate_directory` over explicit (image, label) pairs (e.g. a manifest's)."""
    confusion = ConfusionMatrix(metric_classes or num_classes, ignore_index)
    for i, (image_path, label_path) in enumerate(pairs):
        image, gt = read_pair(image_path, label_path)
        if gt_transform is not None:
            gt = gt_transform(gt)
        result = segment_image(image, logits_fn, num_classes=num_classes, **protocol)
        pred = result.labels if pred_transform is None else pred_transform(result.labels)
        confusion.update(pred, gt)
        if on_result is not None:
            on_result(image_path, result)
        log.debug("evaluated %d/%d %s", i + 1, len(pairs), image_path.name)
    return confusion
