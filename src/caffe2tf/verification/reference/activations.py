"""Element-wise layers, computed in float64 and rounded to float32.

=========  ================================================================
ReLU       y = max(x, 0) + negative_slope * min(x, 0)
PReLU      y = max(x, 0) + a[c] * min(x, 0)     (a shared if one value)
ELU        y = x if x > 0 else alpha * (exp(x) - 1)
Sigmoid    y = 1 / (1 + exp(-x))
TanH       y = tanh(x)
AbsVal     y = |x|
BNLL       y = x + log(1 + exp(-x)) if x > 0 else log(1 + exp(x))
Power      y = (shift + scale * x) ^ power
Exp        y = base ^ (shift + scale * x)      (base -1 means e)
Log        y = log_base(shift + scale * x)     (base -1 means e)
Threshold  y = 1 if x > threshold else 0
Dropout    y = x                               (TEST phase; Caffe scales in TRAIN)
           y = (1 - dropout_ratio) * x         (forks' ``scale_train: false``)
Clip       y = min(max(x, min), max)
Swish      y = x * sigmoid(beta * x)
ReLU6      y = min(max(x, 0), 6)               (``relu6_param.threshold`` if set)
=========  ================================================================
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from caffe2tf.ir import Node
from caffe2tf.verification.reference._params import expect_inputs, f32, fail
from caffe2tf.verification.reference.registry import kernel


def _unary(node: Node, inputs: Sequence[np.ndarray],
           fn: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    expect_inputs(node, inputs, 1)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return [f32(fn(np.asarray(inputs[0], dtype=np.float64)))]


@kernel("ReLU")
def relu(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    slope = float(node.param.relu_param.negative_slope)
    if slope == 0.0:
        return _unary(node, inputs, lambda x: np.maximum(x, 0.0))
    return _unary(node, inputs, lambda x: np.maximum(x, 0.0) + slope * np.minimum(x, 0.0))


@kernel("PReLU")
def prelu(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    expect_inputs(node, inputs, 1)
    if not node.weights:
        raise fail(node, "PReLU needs its slope blob")
    a = np.asarray(node.weights[0], dtype=np.float64).reshape(-1)
    x = inputs[0]
    channels = x.shape[1] if x.ndim > 1 else 1
    if a.size == 1:
        slope = a.reshape(())
    elif a.size == channels:
        slope = a.reshape((channels,) + (1,) * (x.ndim - 2))
    else:
        raise fail(node, f"slope has {a.size} values for {channels} channels")
    return _unary(node, inputs, lambda v: np.maximum(v, 0.0) + slope * np.minimum(v, 0.0))


@kernel("ELU")
def elu(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    alpha = float(node.param.elu_param.alpha)
    return _unary(node, inputs, lambda x: np.where(x > 0, x, alpha * np.expm1(x)))


@kernel("Sigmoid")
def sigmoid(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    return _unary(node, inputs, lambda x: 1.0 / (1.0 + np.exp(-x)))


@kernel("TanH")
def tanh(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    return _unary(node, inputs, np.tanh)


@kernel("AbsVal")
def absval(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    return _unary(node, inputs, np.abs)


@kernel("BNLL")
def bnll(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    return _unary(node, inputs, lambda x: np.where(
        x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(np.minimum(x, 0.0)))))


@kernel("Power")
def power(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.power_param
    pw, scale, shift = float(p.power), float(p.scale), float(p.shift)
    return _unary(node, inputs, lambda x: np.power(shift + scale * x, pw))


def _ln_base(node: Node, base: float) -> float:
    """ln(base) for Exp/Log, where Caffe's base -1 means e."""
    if base != -1.0 and base <= 0.0:
        raise fail(node, f"base must be positive or -1, got {base}")
    return 1.0 if base == -1.0 else float(np.log(base))


@kernel("Exp")
def exp(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.exp_param
    scale, shift = float(p.scale), float(p.shift)
    log_base = _ln_base(node, float(p.base))
    return _unary(node, inputs, lambda x: np.exp(log_base * (shift + scale * x)))


@kernel("Log")
def log(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.log_param
    scale, shift = float(p.scale), float(p.shift)
    inv_log_base = 1.0 / _ln_base(node, float(p.base))
    return _unary(node, inputs, lambda x: np.log(shift + scale * x) * inv_log_base)


@kernel("Threshold")
def threshold(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    t = float(np.float32(node.param.threshold_param.threshold))
    return _unary(node, inputs, lambda x: (x > t).astype(np.float64))


@kernel("Dropout")
def dropout(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.dropout_param
    if p.HasField("scale_train") and not p.scale_train:
        keep = 1.0 - float(p.dropout_ratio)
        return _unary(node, inputs, lambda x: x * keep)
    expect_inputs(node, inputs, 1)
    return [f32(inputs[0]).copy()]


@kernel("Clip")
def clip(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = node.param.clip_param
    lo, hi = float(p.min), float(p.max)
    return _unary(node, inputs, lambda x: np.minimum(np.maximum(x, lo), hi))


@kernel("Swish")
def swish(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    beta = float(node.param.swish_param.beta)
    return _unary(node, inputs, lambda x: x / (1.0 + np.exp(-beta * x)))


@kernel("ReLU6")
def relu6(node: Node, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    cap = float(node.param.relu6_param.threshold)
    return _unary(node, inputs, lambda x: np.minimum(np.maximum(x, 0.0), cap))
