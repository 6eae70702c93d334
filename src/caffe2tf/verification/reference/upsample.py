"""``Upsample``: one type name, two forks' layers (``node.reading`` says which).

* ``"nearest"`` (YOLO forks, 1 bottom): ``out[n, c, h, w] = x[n, c, h // s, w // s]``,
  output ``H*s x W*s`` with ``s = upsample_param.scale`` (1 when unset, the
  YOLO forks' default; the SegNet fork's default of 2 applies to ``"unpool"``).
* ``"unpool"`` (SegNet / ENet, bottoms ``values`` and the ``mask`` of a MAX
  ``Pooling``'s second top, same shape): the top is zeros of
  ``upsample_h x upsample_w`` when both are given, else
  ``H*scale_h - pad_out_h`` x ``W*scale_w - pad_out_w`` (``scale_h/scale_w``
  when given, else ``scale`` for both); then for each ``(n, c)`` and ``i`` in
  order, ``top[n, c].flat[int(mask[n, c].flat[i])] = values[n, c].flat[i]``
  (a later write to the same place wins).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from caffe2tf.ir import Node
from caffe2tf.verification.reference._params import expect_inputs, f32, fail
from caffe2tf.verification.reference.registry import kernel


def unpool_size(node: Node, h: int, w: int) -> tuple[int, int]:
    """Output (height, width) of the SegNet/ENet unpooling ``Upsample``."""
    p = node.param.upsample_param
    if p.HasField("upsample_h") and p.HasField("upsample_w"):
        oh, ow = int(p.upsample_h), int(p.upsample_w)
        if oh <= 1 or ow <= 1:
            raise fail(node, "upsample_h and upsample_w must exceed 1")
        return oh, ow
    if p.HasField("scale_h") or p.HasField("scale_w"):
        if p.HasField("scale") or not (p.HasField("scale_h") and p.HasField("scale_w")):
            raise fail(node, "give upsample_h/upsample_w, or scale, or both scale_h and scale_w")
        sh, sw = int(p.scale_h), int(p.scale_w)
    else:
        sh = sw = int(p.scale)
    if sh <= 1 or sw <= 1:
        raise fail(node, f"scale must exceed 1, got {sh}x{sw}")
    if (p.pad_out_h and sh != 2) or (p.pad_out_w and sw != 2):
        raise fail(node, "pad_out_h/pad_out_w need a scale of 2")
    return h * sh - int(p.pad_out_h), w * sw - int(p.pad_out_w)


def _unpool(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    expect_inputs(node, inputs, 2, ndim=4)
    values, mask = inputs
    if values.shape != mask.shape:
        raise fail(node, f"values {tuple(values.shape)} and mask {tuple(mask.shape)} differ")
    n, c, h, w = values.shape
    oh, ow = unpool_size(node, h, w)
    idx = np.trunc(np.asarray(mask, dtype=np.float64)).astype(np.int64).reshape(n * c, h * w)
    if idx.size and (idx.min() < 0 or idx.max() >= oh * ow):
        raise fail(node, f"mask index {int(idx.min() if idx.min() < 0 else idx.max())} is "
                         f"outside the {oh}x{ow} output (does the scale match the pooling?)")
    target = (idx + (np.arange(n * c) * (oh * ow))[:, None]).reshape(-1)
    src = np.asarray(values, dtype=np.float32).reshape(-1)
    # the last write to a place wins: keep each target's last occurrence
    rev_unique, rev_first = np.unique(target[::-1], return_index=True)
    last = target.size - 1 - rev_first
    out = np.zeros(n * c * oh * ow, dtype=np.float32)
    out[rev_unique] = src[last]
    return out.reshape(n, c, oh, ow)


def _nearest(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    expect_inputs(node, inputs, 1, ndim=4)
    p = node.param.upsample_param
    s = int(p.scale) if p.HasField("scale") else 1
    if s < 1:
        raise fail(node, f"scale must be positive, got {s}")
    return np.repeat(np.repeat(inputs[0], s, axis=2), s, axis=3)


@kernel("Upsample")
def upsample(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    if node.reading == "nearest":
        return [f32(_nearest(node, inputs))]
    if node.reading == "unpool":
        return [f32(_unpool(node, inputs))]
    raise fail(node, f"Upsample reading {node.reading!r} is unknown (expected 'nearest' "
                     "for YOLO's, 'unpool' for SegNet/ENet's)")
