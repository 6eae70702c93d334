"""PSPNet/DeepLab ``Interp``: align-corners bilinear resize.

Output size (PSPNet ``InterpLayer::Reshape``), with the effective input
``H_eff = H + pad_beg + pad_end`` (pads are <= 0: a crop starting at
``-pad_beg`` in both axes)::

    shrink only:     OH = (H_eff - 1) // shrink + 1
    zoom only:       OH = H_eff + (H_eff - 1) * (zoom - 1)
    height & width:  OH = height
    shrink & zoom:   OH = (H_eff - 1) // shrink + 1;  OH = OH + (OH - 1) * (zoom - 1)

(checked in that order; a second bottom gives its own HxW in the forks that
accept one). Sampling (``caffe_cpu_interp2``), in float32 like Caffe::

    r = (H_eff - 1) / (OH - 1) if OH > 1 else 0
    h1r = r * oh;  h1 = int(h1r);  h1p = 1 if h1 < H_eff - 1 else 0
    l1 = h1r - h1;  l0 = 1 - l1
    y = l0 * (w0 * x[h1, w1] + w1l * x[h1, w1 + w1p])
      + l1 * (w0 * x[h1 + h1p, w1] + w1l * x[h1 + h1p, w1 + w1p])

and an exact copy when the sizes already match.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from caffe2tf.ir import Node
from caffe2tf.verification.reference._params import expect_inputs, f32, fail
from caffe2tf.verification.reference.registry import kernel


def interp_output_size(node: Node, h: int, w: int,
                       second: tuple[int, ...] | None = None) -> tuple[int, int]:
    """(OH, OW) of an Interp node for an HxW bottom (``second``: bottom 1's shape)."""
    p = node.param.interp_param
    h_eff = h + p.pad_beg + p.pad_end
    w_eff = w + p.pad_beg + p.pad_end
    if p.pad_beg > 0 or p.pad_end > 0:
        raise fail(node, "Interp only supports pad_beg/pad_end <= 0 (cropping)")
    has_zoom, has_shrink = p.HasField("zoom_factor"), p.HasField("shrink_factor")
    if second is not None:
        oh, ow = second[2], second[3]
    elif has_shrink and not has_zoom:
        s = p.shrink_factor
        oh, ow = (h_eff - 1) // s + 1, (w_eff - 1) // s + 1
    elif has_zoom and not has_shrink:
        z = p.zoom_factor
        oh, ow = h_eff + (h_eff - 1) * (z - 1), w_eff + (w_eff - 1) * (z - 1)
    elif p.HasField("height") and p.HasField("width"):
        oh, ow = p.height, p.width
    elif has_shrink and has_zoom:
        s, z = p.shrink_factor, p.zoom_factor
        oh, ow = (h_eff - 1) // s + 1, (w_eff - 1) // s + 1
        oh, ow = oh + (oh - 1) * (z - 1), ow + (ow - 1) * (z - 1)
    else:
        raise fail(node, "Interp needs zoom_factor, shrink_factor or height and width")
    if (has_zoom and p.zoom_factor < 1) or (has_shrink and p.shrink_factor < 1):
        raise fail(node, "zoom_factor and shrink_factor must be >= 1")
    if h_eff <= 0 or w_eff <= 0 or oh <= 0 or ow <= 0:
        raise fail(node, f"Interp of {h}x{w} to {oh}x{ow} is empty")
    return int(oh), int(ow)


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                   np.ndarray]:
    """(i0, i1, l0, l1) per output index, computed in float32 as Caffe does."""
    if n_out > 1:
        r = np.float32(n_in - 1) / np.float32(n_out - 1)
    else:
        r = np.float32(0.0)
    pos = (r * np.arange(n_out, dtype=np.float32)).astype(np.float32)
    i0 = pos.astype(np.int64)  # truncation, pos >= 0
    step = (i0 < n_in - 1).astype(np.int64)
    l1 = (pos - i0.astype(np.float32)).astype(np.float32)
    l0 = (np.float32(1.0) - l1).astype(np.float32)
    return i0, i0 + step, l0, l1


def resize_align_corners(x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """Bilinear align-corners resize of an (N, C, H, W) array (float32 maths)."""
    n, c, h, w = x.shape
    if (h, w) == (oh, ow):
        return f32(x).copy()
    x = np.asarray(x, dtype=np.float32)
    hi0, hi1, hl0, hl1 = _axis_weights(h, oh)
    wi0, wi1, wl0, wl1 = _axis_weights(w, ow)
    top, bottom = x[:, :, hi0, :], x[:, :, hi1, :]  # (N, C, OH, W)
    top_row = wl0 * top[..., wi0] + wl1 * top[..., wi1]
    bottom_row = wl0 * bottom[..., wi0] + wl1 * bottom[..., wi1]
    y = hl0[:, None] * top_row + hl1[:, None] * bottom_row
    return f32(y)


@kernel("Interp")
def interp(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """PSPNet ``Interp`` (bilinear, align corners, optional crop by pad_beg/pad_end)."""
    expect_inputs(node, inputs, (1, 2), ndim=4)
    x = inputs[0]
    h, w = x.shape[2:]
    second = tuple(inputs[1].shape) if len(inputs) == 2 else None
    oh, ow = interp_output_size(node, h, w, second)
    p = node.param.interp_param
    off = -p.pad_beg
    h_eff = h + p.pad_beg + p.pad_end
    w_eff = w + p.pad_beg + p.pad_end
    window = x[:, :, off:off + h_eff, off:off + w_eff]
    return [resize_align_corners(window, oh, ow)]
