"""What `segment`, `evaluate` and `serve` share: load a converted model with its
segmentation setup (crop size, classes, preprocessing, PSPNet protocol) and the user's
overrides, already parsed (the command-line options are in :mod:`caffe2tf.cli._segmentation`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from caffe2tf.errors import Caffe2TFError
from caffe2tf.model_dir.served import ServedModel
from caffe2tf.segmentation.setup import SegmentationSetup

__all__ = ["LoadedSegmenter", "load_segmenter", "make_gt_transform", "protocol_kwargs"]


@dataclass
class LoadedSegmenter:
    """A served model, its segmentation setup and the classes it reports."""

    model: ServedModel
    setup: SegmentationSetup
    class_names: list[str]
    to_output_classes: Callable[[np.ndarray], np.ndarray]  # model labels -> reported labels
    num_output_classes: int

    def logits_fn(self) -> Callable[[np.ndarray], np.ndarray]:
        return self.setup.logits_fn()


def load_segmenter(model_dir: str, *, mean: Sequence[float] | None = None, scale: float | None = None,
                   bgr: bool | None = None, base_size: int | None = None, scales: Sequence[float] | None = None,
                   flip: bool | None = None, classes: str | None = None) -> LoadedSegmenter:
    """Load ``model_dir`` as a segmenter (NotASegmenterError if it is not one).

    ``mean`` (in the net's channel order), ``scale`` and ``bgr`` override the recorded
    preprocessing (:meth:`~caffe2tf.model_dir.preprocessing.Preprocessing.with_overrides`);
    ``base_size``, ``scales`` and ``flip`` the protocol; ``classes`` names the classes
    ('ade20k', 'indoor': ADE20K grouped into 10 indoor classes, or a file of names).
    """
    from caffe2tf.segmentation import classes as cls
    from caffe2tf.segmentation.errors import NotASegmenterError
    from caffe2tf.segmentation.setup import segmentation_setup

    model = ServedModel.load(model_dir)
    setup, why = segmentation_setup(model, base_size=base_size, scales=scales, flip=flip)
    if setup is None:
        raise NotASegmenterError(why, file=model_dir)
    if mean is not None or scale is not None or bgr is not None:
        setup.preprocessing = setup.preprocessing.with_overrides(mean=mean, scale=scale, bgr=bgr)
    identity = lambda labels: labels  # noqa: E731
    if classes == "indoor" and setup.num_classes == 150:
        mapping = cls.indoor_mapping()
        names = cls.load_class_names("indoor")
        return LoadedSegmenter(model, setup, names, lambda labels: cls.remap(labels, mapping), len(names))
    if classes is not None:
        try:
            names = cls.load_class_names(classes)
        except OSError as exc:
            raise Caffe2TFError(f"cannot read class names: {exc.strerror or exc}", file=classes) from None
        if len(names) < setup.num_classes:
            raise Caffe2TFError(f"{len(names)} class names for a model with {setup.num_classes} classes",
                                file=classes)
        setup.class_names = list(names[:setup.num_classes])
    return LoadedSegmenter(model, setup, list(setup.class_names), identity, setup.num_classes)


def make_gt_transform(seg: LoadedSegmenter, *, ignore_index: int, label_offset: int,
                      to_output: bool) -> Callable[[np.ndarray], np.ndarray]:
    """Stored labels -> reported classes: subtract ``label_offset`` (negatives ignored), then,
    with ``to_output``, map model classes to the reported ones (e.g. ADE20K -> indoor)."""
    def gt_transform(gt: np.ndarray) -> np.ndarray:
        g = gt.astype(np.int64)
        if label_offset:
            keep = (g != ignore_index) & (g >= label_offset)
            g = np.where(keep, g - label_offset, ignore_index)
        return seg.to_output_classes(g) if to_output else g
    return gt_transform


def protocol_kwargs(seg: LoadedSegmenter) -> dict:
    """Keyword arguments of ``segment_image`` (besides the image and ``logits_fn``)."""
    return seg.setup.protocol_kwargs()
