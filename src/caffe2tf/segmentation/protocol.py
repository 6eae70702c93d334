"""PSPNet's evaluation protocol: multi-scale, sliding-window, flip-augmented inference.

The protocol follows PSPNet's own MATLAB evaluation code (``evaluation/eval_sub.m``,
``scale_process.m``, ``caffe_process.m``, ``pre_img.m`` in hszhao/PSPNet) and runs any
``logits_fn(batch) -> scores``: ``batch`` is float32 NHWC ``[n, crop_h, crop_w, 3]``,
already preprocessed, and the scores are ``[n, crop_h, crop_w, num_classes]`` at crop
resolution. For each scale ``s``:

1. resize the RGB image (bilinear, anti-aliased when shrinking, uint8 result) so that
   its long side is ``base_size * s + long_side_offset`` (short side rounded);
2. preprocess (BGR, minus mean); where a side is shorter than the crop, pad at the
   bottom/right with the mean colour, i.e. zeros after preprocessing;
3. slide a crop-sized window with stride ``ceil(crop * 2/3)`` per axis; the last window
   of each row/column is shifted back to end exactly at the border, so windows cover
   every pixel (see :func:`window_starts`);
4. run each window (and, with ``flip``, its mirror image, whose scores are mirrored
   back and added); with ``softmax`` the summed scores go through a softmax over
   classes, as PSPNet's ``caffe_process.m`` does;
5. sum the window scores per pixel and divide by the number of windows covering it;
6. cut the padding off and resize the score map (bilinear) to the original size;
   with ``softmax`` renormalise each pixel's scores to sum to 1 (``scale_process.m``).

The scale score maps are averaged (``eval_sub.m`` divides their sum by the number of
scales; the argmax is the same as for the sum) and the argmax is the label map.

:class:`SegmentationProtocol` splits this into three stages so a folder can run them as
a pipeline (``caffe2tf.segmentation.stream``): :meth:`~SegmentationProtocol.prepare`
(steps 1-3, no model), :meth:`~SegmentationProtocol.run_model` (step 4 and the sums of
step 5: the model calls) and :meth:`~SegmentationProtocol.finish` (the rest and the
argmax). :func:`segment_image` is the three in a row.

Reproducing PSPNet's published numbers
--------------------------------------
PSPNet's evaluation code for ``pspnet50_ADE20K_473`` uses ``crop_size=(473, 473)``,
``base_size=512`` with ``long_side_offset=1`` (the MATLAB long side is
``base_size * scale + 1`` = 513), ``flip=True``, ``softmax=True`` and the default
preprocessing; single-scale is ``scales=(1.0,)`` and multi-scale is
``(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)``. :data:`PSPNET_ADE20K_SINGLE_SCALE` and
:data:`PSPNET_ADE20K_MULTI_SCALE` hold these keyword arguments. The function's own
defaults (``long_side_offset=0``, ``flip=False``, ``softmax=False``) are the plain
variant: raw scores averaged over windows, long side exactly ``base_size * scale``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from caffe2tf.segmentation.preprocess import (PSPNET_PREPROCESSING, Preprocessing,
                                              resize_image, resize_scores, scaled_size)

__all__ = ["LogitsFn", "SegmentationResult", "SegmentationProtocol", "PreparedImage", "ScaleInput",
           "segment_image", "window_starts", "sliding_windows", "window_stride",
           "PSPNET_ADE20K_SINGLE_SCALE", "PSPNET_ADE20K_MULTI_SCALE"]

log = logging.getLogger(__name__)

LogitsFn = Callable[[np.ndarray], np.ndarray]

PSPNET_ADE20K_SINGLE_SCALE: dict = dict(
    crop_size=(473, 473), base_size=512, long_side_offset=1, scales=(1.0,), flip=True,
    softmax=True, preprocessing=PSPNET_PREPROCESSING)
PSPNET_ADE20K_MULTI_SCALE: dict = dict(
    PSPNET_ADE20K_SINGLE_SCALE, scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75))


@dataclass(frozen=True)
class SegmentationResult:
    """``labels``: int32 ``[H, W]`` class indices; ``scores``: float32 ``[H, W, C]``."""

    labels: np.ndarray
    scores: np.ndarray


def window_stride(crop: int, stride_rate: float = 2 / 3) -> int:
    """``ceil(crop * stride_rate)`` computed exactly (2/3 is taken as the fraction)."""
    rate = Fraction(stride_rate).limit_denominator(1000)
    return max(1, math.ceil(crop * rate))


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of the windows along one axis of a (padded) ``length >= crop``.

    ``ceil((length - crop) / stride) + 1`` windows at ``i * stride``, each clamped to
    ``length - crop`` so the last one ends at the border (``scale_process.m``).
    """
    if length < crop:
        raise ValueError(f"axis length {length} is shorter than the crop {crop}; pad first")
    count = -(-(length - crop) // stride) + 1
    return [min(i * stride, length - crop) for i in range(count)]


def sliding_windows(height: int, width: int, crop_size: tuple[int, int],
                    stride: tuple[int, int]) -> list[tuple[int, int]]:
    """``(y, x)`` top-left corners of all windows over a padded ``height x width``."""
    ys = window_starts(height, crop_size[0], stride[0])
    xs = window_starts(width, crop_size[1], stride[1])
    return [(y, x) for y in ys for x in xs]


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (a new array; the input is left alone)."""
    return _softmax_(scores - scores.max(axis=-1, keepdims=True), shifted=True)


def _softmax_(scores: np.ndarray, *, shifted: bool = False) -> np.ndarray:
    """Softmax over the last axis in place (``shifted``: the max is already subtracted)."""
    if not shifted:
        scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@dataclass(frozen=True)
class ScaleInput:
    """One scale of one image: the padded network input and its windows."""

    x: np.ndarray                     # float32 [H', W', 3], padded to at least the crop
    size: tuple[int, int]             # (h, w) of the resized image before padding
    windows: list[tuple[int, int]]    # (y, x) top-left corners


@dataclass(frozen=True)
class PreparedImage:
    """What :meth:`SegmentationProtocol.prepare` makes of a photo (no model run yet)."""

    shape: tuple[int, int]            # the photo's (H, W)
    scales: list[ScaleInput]

    @property
    def passes(self) -> int:
        """Crops the model runs on: windows over all scales (not counting mirrors)."""
        return sum(len(s.windows) for s in self.scales)


@dataclass(frozen=True)
class SegmentationProtocol:
    """:func:`segment_image`'s settings, checked once; its three stages as methods."""

    crop_size: tuple[int, int] = (473, 473)
    num_classes: int | None = None
    base_size: int = 512
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    preprocessing: Preprocessing = PSPNET_PREPROCESSING
    softmax: bool = False
    long_side_offset: int = 0
    stride_rate: float = 2 / 3
    batch_size: int = 4

    def __post_init__(self) -> None:
        crop = self.crop_size
        if isinstance(crop, int):
            crop = (crop, crop)
        object.__setattr__(self, "crop_size", (int(crop[0]), int(crop[1])))
        object.__setattr__(self, "scales", tuple(self.scales))
        if not self.scales:
            raise ValueError("scales must not be empty")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, received {self.batch_size}")

    def passes_per_image(self, prepared: PreparedImage) -> int:
        """Forward passes of one crop each (mirrors included)."""
        return prepared.passes * (2 if self.flip else 1)

    def prepare(self, image_rgb: np.ndarray) -> PreparedImage:
        """Resize, preprocess and pad the photo for every scale; list the windows."""
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image [H, W, 3], received "
                             f"{image.dtype} {image.shape}")
        crop = self.crop_size
        stride = (window_stride(crop[0], self.stride_rate), window_stride(crop[1], self.stride_rate))
        height, width = image.shape[:2]
        out = []
        for scale in self.scales:
            new_h, new_w = scaled_size(height, width, self.base_size * scale + self.long_side_offset)
            x = self.preprocessing.to_net_input(resize_image(image, (new_h, new_w)))
            pad_h, pad_w = max(crop[0] - new_h, 0), max(crop[1] - new_w, 0)
            if pad_h or pad_w:
                x = np.pad(x, ((0, pad_h), (0, pad_w), (0, 0)))
            windows = sliding_windows(x.shape[0], x.shape[1], crop, stride)
            log.debug("scale %s: %dx%d -> %dx%d, %d windows", scale, height, width, new_h, new_w,
                      len(windows))
            out.append(ScaleInput(x=x, size=(new_h, new_w), windows=windows))
        return PreparedImage(shape=(height, width), scales=out)

    def run_model(self, prepared: PreparedImage,
                  logits_fn: LogitsFn) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every window (and mirror) through ``logits_fn``; per scale (score sums, counts)."""
        return [_run_windows(s.x, s.windows, self.crop_size, logits_fn, self.num_classes,
                             self.flip, self.softmax, self.batch_size) for s in prepared.scales]

    def finish(self, prepared: PreparedImage,
               sums: list[tuple[np.ndarray, np.ndarray]]) -> SegmentationResult:
        """Average over windows, back to the photo's size, average over scales, argmax."""
        summed: np.ndarray | None = None
        for s, (total, count) in zip(prepared.scales, sums, strict=True):
            new_h, new_w = s.size
            total /= count[:, :, None]  # in place: ``total`` belongs to this image alone
            scores = resize_scores(total[:new_h, :new_w], prepared.shape)
            if self.softmax:
                scores /= scores.sum(axis=-1, keepdims=True)
            if summed is None:
                summed = scores
            else:
                summed += scores
        assert summed is not None
        if len(self.scales) > 1:  # x / 1 == x exactly: one scale needs no division
            summed /= np.float32(len(self.scales))
        scores = np.ascontiguousarray(summed, dtype=np.float32)
        labels = np.argmax(scores, axis=-1).astype(np.int32)
        return SegmentationResult(labels=labels, scores=scores)

    def segment(self, image_rgb: np.ndarray, logits_fn: LogitsFn) -> SegmentationResult:
        prepared = self.prepare(image_rgb)
        return self.finish(prepared, self.run_model(prepared, logits_fn))


def _run_windows(x: np.ndarray, windows: list[tuple[int, int]], crop: tuple[int, int],
                 logits_fn: LogitsFn, num_classes: int | None, flip: bool, softmax: bool,
                 batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum window scores over the padded input ``x``; returns (score sums, window counts).

    A window's scores are used where the model wrote them (no copy); with ``flip`` its
    mirror's are added into a new array (a window and its mirror are adjacent jobs, so
    the mirror may come in the next batch) and the softmax runs in place on that.
    """
    ch, cw = crop
    jobs = [(i, mirrored) for i in range(len(windows)) for mirrored in ((False, True) if flip
                                                                           else (False,))]
    unmirrored: dict[int, np.ndarray] = {}
    total: np.ndarray | None = None
    count = np.zeros(x.shape[:2], dtype=np.float32)
    for chunk in _chunks(jobs, batch_size):
        batch = np.empty((len(chunk), ch, cw, 3), dtype=np.float32)
        for k, (i, mirrored) in enumerate(chunk):
            y0, x0 = windows[i]
            crop_x = x[y0:y0 + ch, x0:x0 + cw]
            batch[k] = crop_x[:, ::-1] if mirrored else crop_x
        out = np.asarray(logits_fn(batch), dtype=np.float32)
        if out.ndim != 4 or out.shape[:3] != (len(chunk), ch, cw):
            raise ValueError(f"logits_fn returned shape {out.shape} for a batch of shape "
                             f"{batch.shape}; expected [{len(chunk)}, {ch}, {cw}, classes]")
        if num_classes is not None and out.shape[3] != num_classes:
            raise ValueError(f"logits_fn returned {out.shape[3]} classes, expected "
                             f"{num_classes}")
        if total is None:
            total = np.zeros(x.shape[:2] + (out.shape[3],), dtype=np.float32)
        for k, (i, mirrored) in enumerate(chunk):
            if flip and not mirrored:
                unmirrored[i] = out[k]  # wait for the mirrored half
                continue
            if flip:
                score = unmirrored.pop(i) + out[k, :, ::-1]  # a new array: ours to change
                if softmax:
                    _softmax_(score)
            else:  # the model's own output: never changed in place
                score = _softmax(out[k]) if softmax else out[k]
            y0, x0 = windows[i]
            total[y0:y0 + ch, x0:x0 + cw] += score
            count[y0:y0 + ch, x0:x0 + cw] += 1
    assert total is not None and not unmirrored
    return total, count


def segment_image(image_rgb: np.ndarray, logits_fn: LogitsFn,
                  crop_size: tuple[int, int] | int = (473, 473),
                  num_classes: int | None = None, base_size: int = 512,
                  scales: Sequence[float] = (1.0,), flip: bool = False,
                  preprocessing: Preprocessing = PSPNET_PREPROCESSING, *,
                  softmax: bool = False, long_side_offset: int = 0,
                  stride_rate: float = 2 / 3, batch_size: int = 4) -> SegmentationResult:
    """Segment one RGB uint8 image ``[H, W, 3]`` with PSPNet's protocol (module doc).

    ``num_classes`` (optional) is checked against the scores' last axis.
    ``batch_size`` bounds how many crops go to ``logits_fn`` in one call; all windows
    of one image and scale (and their mirrors) are batched together up to that size.
    """
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], received "
                         f"{image.dtype} {image.shape}")
    protocol = SegmentationProtocol(
        crop_size=crop_size, num_classes=num_classes, base_size=base_size, scales=tuple(scales),
        flip=flip, preprocessing=preprocessing, softmax=softmax, long_side_offset=long_side_offset,
        stride_rate=stride_rate, batch_size=batch_size)
    return protocol.segment(image, logits_fn)
