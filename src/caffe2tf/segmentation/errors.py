"""Errors for bad segmentation inputs (dataset folders, label files, class lists).

They are :class:`caffe2tf.errors.Caffe2TFError`, so the CLI prints their one-line
message and exits with status 2. Wrong arguments from code stay ``ValueError``.
"""
from __future__ import annotations

from caffe2tf.errors import Caffe2TFError

__all__ = ["NotASegmenterError", "SegmentationInputError"]


class SegmentationInputError(Caffe2TFError):
    """A dataset folder, label image or class-name file cannot be used."""


class NotASegmenterError(SegmentationInputError):
    """The model directory holds a model that does not segment photos; ``reason`` says why
    (``serve`` then serves ``:predict`` only)."""

    def __init__(self, reason: str, *, file: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"this model does not segment images: {reason}", file=file)
