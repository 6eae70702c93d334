"""Eltwise: SUM (with coefficients), PROD, MAX."""
from __future__ import annotations

import keras

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.backend.layers import CaffeWeightedSum
from caffe2tf.backend.registry import translator

EP = caffe_pb2.EltwiseParameter


@translator("Eltwise")
def eltwise(node, inputs, ctx):
    """Add / Multiply / Maximum; SUM with coefficients other than 1 is
    :class:`CaffeWeightedSum` (Caffe's ``0 + c0*x0 + c1*x1 + ...``)."""
    p = node.param.eltwise_param
    name = ctx.layer_name(node)
    if p.operation == EP.PROD:
        return [keras.layers.Multiply(name=name)(inputs)]
    if p.operation == EP.MAX:
        return [keras.layers.Maximum(name=name)(inputs)]
    coeffs = list(p.coeff) or [1.0] * len(inputs)
    if all(c == 1 for c in coeffs):
        return [keras.layers.Add(name=name)(inputs)]
    return [CaffeWeightedSum(coeffs, name=name)(inputs)]
