"""Errors for bad segmentation inputs (dataset folders, label files, class lists).

They are :class:`caffe2tf.errors.Caffe2TFError`, so the CLI prints their one-line
message and exits with status 2. Wrong arguments from code stay ``ValueError``.
"""
from __future__ import annotations

from caffe2tf.errors import Caffe2TFError

__all__ = ["SegmentationInputError"]


class SegmentationInputError(Caffe2TFError):
    """A dataset folder, label image or class-name file cannot be used."""
