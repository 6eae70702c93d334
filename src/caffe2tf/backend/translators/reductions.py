"""ArgMax and Reduction."""
from __future__ import annotations

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.shapes import canonical_axis
from caffe2tf.backend import layout
from caffe2tf.backend.layers import CaffeArgMax, CaffeReduction
from caffe2tf.backend.registry import translator
from caffe2tf.backend.translators.shape_ops import layouts_agree

RP = caffe_pb2.ReductionParameter
_OPS = {RP.SUM: "sum", RP.ASUM: "asum", RP.SUMSQ: "sumsq", RP.MEAN: "mean"}


@translator("ArgMax")
def argmax(node, inputs, ctx):
    """:class:`CaffeArgMax`: top-k indices (as floats) or values along ``axis``, or per
    sample over Caffe's flatten (``(N, 1 or 2, top_k)``); ties go to the larger index."""
    p = node.param.argmax_param
    x_shape, out_shape = ctx.in_shapes(node)[0], ctx.out_shapes(node)[0]
    rank = len(x_shape)
    name = ctx.layer_name(node)
    if p.HasField("axis"):
        axis = layout.to_keras_axis(canonical_axis(p.axis, rank), rank)
        return [CaffeArgMax(p.top_k, p.out_max_val, axis=axis, name=name)(inputs[0])]
    in_perm = None if layouts_agree(x_shape) else list(layout.NHWC_TO_NCHW)
    out_perm = list(layout.NCHW_TO_NHWC) if len(out_shape) == 4 else None
    layer = CaffeArgMax(p.top_k, p.out_max_val, in_perm=in_perm, out_shape=[-1, *out_shape[1:]],
                        out_perm=out_perm, name=name)
    return [layer(inputs[0])]


@translator("Reduction")
def reduction(node, inputs, ctx):
    """:class:`CaffeReduction` over every axis from ``axis`` on: ``coeff`` times
    SUM, ASUM, SUMSQ or MEAN."""
    p = node.param.reduction_param
    rank = len(ctx.in_shapes(node)[0])
    axis = canonical_axis(p.axis, rank)
    axes = sorted(layout.to_keras_axis(a, rank) for a in range(axis, rank))
    kept = [layout.to_keras_axis(a, rank) for a in range(axis)]  # in Caffe order
    out_perm = [sorted(kept).index(k) for k in kept]
    if len(out_perm) == 4:  # a 4-D result (of a 5-D+ bottom) is NHWC in Keras
        out_perm = [out_perm[i] for i in layout.caffe_to_keras_perm(4)]
    out_perm = None if out_perm == sorted(out_perm) else out_perm
    return [CaffeReduction(_OPS[p.operation], axes, p.coeff, out_perm, name=ctx.layer_name(node))(inputs[0])]
