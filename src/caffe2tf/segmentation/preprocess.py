"""Network-input preprocessing and the resizing helpers of the evaluation protocol.

PSPNet (Caffe) feeds BGR images minus the ImageNet mean, unscaled:
``x = (image[..., ::-1] - mean_bgr) * scale`` with mean RGB = (123.68, 116.779,
103.939), i.e. mean BGR = (103.939, 116.779, 123.68), and scale 1. The Keras
model converted by caffe2tf is NHWC but keeps Caffe's channel order, so the same
BGR preprocessing applies.

:class:`Preprocessing` and :data:`PSPNET_PREPROCESSING` live in
:mod:`caffe2tf.model_dir.preprocessing` (the one the conversion record keeps); they are
re-exported here.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from caffe2tf.model_dir.preprocessing import PSPNET_PREPROCESSING, Preprocessing

__all__ = ["Preprocessing", "PSPNET_PREPROCESSING", "resize_image", "resize_scores",
           "scaled_size", "to_net_input"]

_MAX_THREADS = 8


def to_net_input(image_rgb: np.ndarray,
                 preprocessing: Preprocessing = PSPNET_PREPROCESSING) -> np.ndarray:
    """``preprocessing.to_net_input(image_rgb)``; PSPNet's preprocessing by default."""
    return preprocessing.to_net_input(image_rgb)


def _round_half_up(x: float) -> int:
    """MATLAB's ``round`` (half away from zero) for non-negative values."""
    return int(math.floor(x + 0.5))


def scaled_size(height: int, width: int, long_side: float) -> tuple[int, int]:
    """(h, w) with the long side equal to ``long_side``, keeping the aspect ratio.

    As PSPNet's ``eval_sub.m``: the long side becomes ``long_side`` and the short
    side ``round(long_side / long * short)`` (at least 1), computed in float32 as
    MATLAB's ``single`` and rounded half away from zero. A square image counts as
    wider than tall, like the MATLAB code.
    """
    long_side_int = _round_half_up(long_side)

    def short(other: int, long: int) -> int:
        value = np.float32(long_side_int) / np.float32(long) * np.float32(other)
        return max(1, _round_half_up(float(value)))

    if height > width:
        return long_side_int, short(width, height)
    return short(height, width), long_side_int


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``uint8 [H, W, 3]`` image to ``size = (h, w)``.

    Pillow's bilinear filter widens its support when shrinking (anti-aliasing),
    like MATLAB's ``imresize(..., 'bilinear')`` that PSPNet's evaluation uses, and
    returns rounded uint8 values like it.
    """
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))


def resize_scores(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``float32 [H, W, C]`` score map to ``size = (h, w)``.

    Resizes each channel with Pillow's float ("F") mode, the same filter as
    :func:`resize_image`, so shrinking is anti-aliased as in MATLAB's ``imresize``.
    Channels run on a few threads (Pillow releases the GIL while resampling).
    """
    h, w = size
    if scores.shape[:2] == (h, w):
        return scores.astype(np.float32, copy=False)
    planes = np.ascontiguousarray(np.moveaxis(scores, -1, 0), dtype=np.float32)

    def one(c: int) -> np.ndarray:
        plane = Image.fromarray(planes[c], "F").resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(plane, dtype=np.float32)

    workers = min(_MAX_THREADS, os.cpu_count() or 1, len(planes))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            resized = list(pool.map(one, range(len(planes))))
    else:
        resized = [one(c) for c in range(len(planes))]
    return np.stack(resized, axis=-1)
