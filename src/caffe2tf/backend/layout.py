"""Every NCHW -> NHWC fact of caffe2tf, as pure NumPy functions.

The layout rule: a value of rank 4 is NCHW in Caffe and NHWC in Keras; a value of
any other rank keeps Caffe's axis order. Translators never permute axes or weights
themselves: they ask this module.

Weight layouts:

==================  =========================  ==========================
Caffe layer         Caffe blob                 Keras
==================  =========================  ==========================
Convolution         W (O, I/g, kh, kw)         Conv2D kernel (kh, kw, I/g, O)
Convolution g=I     W (I*m, 1, kh, kw)         DepthwiseConv2D (kh, kw, I, m)
Deconvolution       W (I, O/g, kh, kw)         conv_transpose (kh, kw, O/g, I)
InnerProduct        W (N, K)                   Dense kernel (K, N)
IP after 4-D        W (N, C*H*W) in C,H,W      Dense kernel (H*W*C, N) in H,W,C
==================  =========================  ==========================
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from caffe2tf import ir

#: Keras tensor of rank 4 = Caffe tensor.transpose(NCHW_TO_NHWC).
NCHW_TO_NHWC = (0, 2, 3, 1)
#: Caffe tensor of rank 4 = Keras tensor.transpose(NHWC_TO_NCHW).
NHWC_TO_NCHW = (0, 3, 1, 2)


def canonical_axis(axis: int, rank: int) -> int:
    """Caffe's negative-axis convention: ``-1`` is the last axis (:func:`caffe2tf.ir.canonical_axis`)."""
    return ir.canonical_axis(axis, rank)


def caffe_to_keras_perm(rank: int) -> tuple[int, ...]:
    """``perm`` such that ``keras = caffe.transpose(perm)`` for a value of this rank."""
    return NCHW_TO_NHWC if rank == 4 else tuple(range(rank))


def keras_to_caffe_perm(rank: int) -> tuple[int, ...]:
    """``perm`` such that ``caffe = keras.transpose(perm)`` for a value of this rank."""
    return NHWC_TO_NCHW if rank == 4 else tuple(range(rank))


def to_keras_axis(caffe_axis: int, rank: int) -> int:
    """The Keras axis holding Caffe's ``caffe_axis`` of a rank-``rank`` value."""
    a = canonical_axis(caffe_axis, rank)
    return caffe_to_keras_perm(rank).index(a)


def to_keras_shape(caffe_shape: Sequence[int]) -> tuple[int, ...]:
    """The Keras shape of a value whose Caffe shape is ``caffe_shape``."""
    return tuple(caffe_shape[i] for i in caffe_to_keras_perm(len(caffe_shape)))


def nchw_to_keras(array: np.ndarray) -> np.ndarray:
    """A Caffe-layout activation in Keras layout (rank 4: NCHW -> NHWC; else unchanged)."""
    return np.transpose(array, caffe_to_keras_perm(array.ndim))


def keras_to_nchw(array: np.ndarray) -> np.ndarray:
    """A Keras-layout activation in Caffe layout (rank 4: NHWC -> NCHW; else unchanged)."""
    return np.transpose(array, keras_to_caffe_perm(array.ndim))


def conv_kernel_oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    """Convolution weights (O, I/g, kh, kw) -> Conv2D kernel (kh, kw, I/g, O).

    Caffe's groups split input and output channels into contiguous blocks, as
    ``Conv2D(groups=g)`` does, so grouped kernels need no other change.
    """
    _check_rank(w, 4, "convolution weights")
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def conv_kernel_hwio_to_oihw(k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`conv_kernel_oihw_to_hwio` (Conv2D kernel back to Caffe's layout)."""
    _check_rank(k, 4, "Conv2D kernel")
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def depthwise_kernel(w: np.ndarray, in_channels: int) -> np.ndarray:
    """Convolution weights with ``group == in_channels`` -> DepthwiseConv2D kernel.

    Caffe's output channel ``o`` reads input channel ``o // m`` (``m = O / I``);
    DepthwiseConv2D's output ``i * m + j`` reads input ``i`` with kernel ``[..., i, j]``.
    """
    _check_rank(w, 4, "convolution weights")
    o, one, kh, kw = w.shape
    if one != 1 or o % in_channels:
        raise ValueError(f"weights {w.shape} are not depthwise for {in_channels} input channels")
    return np.ascontiguousarray(w.reshape(in_channels, o // in_channels, kh, kw).transpose(2, 3, 0, 1))


def deconv_kernel_to_keras(w: np.ndarray) -> np.ndarray:
    """Deconvolution weights (I, O/g, kh, kw) -> conv_transpose kernel (kh, kw, O/g, I).

    Caffe's deconvolution is the backward pass of a convolution whose weights are
    the same blob read as (O_conv = I, I_conv/g = O/g, kh, kw); ``conv2d_transpose``
    takes that convolution's HWIO kernel, so no spatial flip is needed. With groups,
    input channels ``[j*I/g, (j+1)*I/g)`` use kernel ``[..., j*I/g:(j+1)*I/g]``.
    """
    _check_rank(w, 4, "deconvolution weights")
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def inner_product_weight_after_nhwc(w: np.ndarray, c: int, h: int, w_: int) -> np.ndarray:
    """Permute the columns of InnerProduct weights (N, C*H*W) for an NHWC flatten.

    Caffe flattens a 4-D bottom in C,H,W order; Keras's Flatten of the NHWC tensor
    gives H,W,C order. The returned (N, H*W*C) matrix applied to the NHWC flatten
    equals ``w`` applied to Caffe's flatten.
    """
    _check_rank(w, 2, "inner product weights")
    n, k = w.shape
    if k != c * h * w_:
        raise ValueError(f"weights {w.shape} do not match a {c}x{h}x{w_} bottom")
    return np.ascontiguousarray(w.reshape(n, c, h, w_).transpose(0, 2, 3, 1).reshape(n, k))


def inner_product_kernel(w: np.ndarray, transpose: bool) -> np.ndarray:
    """InnerProduct weights -> Dense kernel (K, N). ``w`` is (N, K), or (K, N) if ``transpose``."""
    _check_rank(w, 2, "inner product weights")
    return np.ascontiguousarray(w if transpose else w.T)


def param_broadcast_shape(caffe_shape: Sequence[int], axis: int, num_param_axes: int) -> tuple[int, ...]:
    """Keras-layout shape to which a parameter spanning Caffe axes
    ``[axis, axis + num_param_axes)`` of a value of ``caffe_shape`` broadcasts
    (Scale, Bias, BatchNorm, PReLU). Axes outside the span are 1."""
    rank = len(caffe_shape)
    full = [1] * rank
    for a in range(axis, axis + num_param_axes):
        full[a] = caffe_shape[a]
    return to_keras_shape(full)


def param_to_keras_broadcast(param: np.ndarray, caffe_shape: Sequence[int], axis: int) -> np.ndarray:
    """A parameter of shape ``caffe_shape[axis : axis + param.ndim]`` reshaped and
    permuted so that it broadcasts against the Keras-layout value (full rank,
    batch axis included)."""
    rank = len(caffe_shape)
    n = param.ndim
    if tuple(param.shape) != tuple(caffe_shape[axis:axis + n]):
        raise ValueError(f"parameter {param.shape} does not match {tuple(caffe_shape)} at axis {axis}")
    full = param.reshape((1,) * axis + param.shape + (1,) * (rank - axis - n))
    return np.ascontiguousarray(np.transpose(full, caffe_to_keras_perm(rank)))


def _check_rank(a: np.ndarray, rank: int, what: str) -> None:
    if a.ndim != rank:
        raise ValueError(f"{what} must be {rank}-D, got shape {a.shape}")
