"""Interp (PSPNet/DeepLab): align-corners bilinear resize."""
from __future__ import annotations

from caffe2tf.errors import ConversionError
from caffe2tf.backend.layers import CaffeInterp
from caffe2tf.backend.registry import translator


@translator("Interp")
def interp(node, inputs, ctx):
    """:class:`CaffeInterp` to the output size Caffe computed (zoom/shrink/height+width,
    or a second bottom's size), after cropping by ``pad_beg``/``pad_end`` (<= 0)."""
    p = node.param.interp_param
    out_shape = ctx.out_shapes(node)[0]
    if p.pad_beg > 0 or p.pad_end > 0:
        raise ConversionError("Interp supports only pad_beg/pad_end <= 0", layer=node.name, line=node.line)
    layer = CaffeInterp(out_shape[2:], p.pad_beg, p.pad_end, name=ctx.layer_name(node))
    return [layer(inputs[0])]
