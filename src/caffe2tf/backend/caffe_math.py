"""Build-time constants that reproduce Caffe's arithmetic exactly (pure NumPy).

Used by :mod:`caffe2tf.backend.layers`; every function here is a
fact about Caffe's C++ and has its own unit test.
"""
from __future__ import annotations

import numpy as np


def pool_overhang(size: int, kernel: int, stride: int, pad: int, out: int) -> int:
    """Padding needed after the input so that ``out`` windows fit (Caffe's ceil
    overhang plus the trailing pad); 0 when the last window ends inside."""
    return max(0, (out - 1) * stride + kernel - size - pad)


def ave_pool_divisor(size: int, kernel: int, stride: int, pad: int, out: int) -> np.ndarray:
    """Caffe's AVE divisor along one axis: the window clipped to ``[-pad, size + pad)``
    (so padding counts, the ceil overhang beyond the padding does not)."""
    start = np.arange(out) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    return (end - start).astype(np.int64)


def ave_pool_correction(in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                        pad: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """``kh*kw / divisor`` per output pixel, shape (oh, ow), float32: multiplies a
    full-window average of the zero-padded input into Caffe's AVE result."""
    dh = ave_pool_divisor(in_hw[0], kernel[0], stride[0], pad[0], out_hw[0])
    dw = ave_pool_divisor(in_hw[1], kernel[1], stride[1], pad[1], out_hw[1])
    full = float(kernel[0] * kernel[1])
    return (full / (dh[:, None] * dw[None, :]).astype(np.float64)).astype(np.float32)


def exp_constants(base: float, scale: float, shift: float) -> tuple[np.float32, np.float32]:
    """Caffe ExpLayer: ``y = outer * exp(inner * x)``; returns ``(inner, outer)``."""
    f = np.float32
    log_base = f(1) if base == -1 else f(np.log(f(base)))
    inner = f(log_base * f(scale))
    if shift == 0:
        outer = f(1)
    elif base == -1:
        outer = f(np.exp(f(shift)))
    else:
        outer = f(np.power(f(base), f(shift)))
    return inner, outer


def log_base_scale(base: float) -> np.float32:
    """Caffe LogLayer's ``1 / log(base)`` (1 for the natural log, ``base == -1``)."""
    f = np.float32
    if base == -1:
        return f(1)
    return f(f(1) / f(np.log(f(base))))
