"""SSD's layers (weiliu89/caffe): Normalize, PriorBox and DetectionOutput.

Permute, Flatten, Reshape and Softmax, which SSD heads also use, are ordinary shape
and activation layers (``shape_ops.py``, ``activations.py``).
"""
from __future__ import annotations

import logging

import numpy as np

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.errors import ConversionError
from caffe2tf.backend import layout
from caffe2tf.backend.context import weights_of
from caffe2tf.backend.prior_box import PriorBoxSpec, prior_boxes
from caffe2tf.backend.registry import translator
from caffe2tf.backend.layers.ssd import NO_THRESHOLD, CaffeConstant, CaffeDetectionOutput, CaffeNormalize

log = logging.getLogger(__name__)

CODE_TYPE_NAMES = {caffe_pb2.PriorBoxParameter.CORNER: "corner",
                   caffe_pb2.PriorBoxParameter.CENTER_SIZE: "center_size",
                   caffe_pb2.PriorBoxParameter.CORNER_SIZE: "corner_size"}


@translator("Normalize")
def normalize(node, inputs, ctx):
    """:class:`CaffeNormalize`: ``x / sqrt(sum x^2 + eps) * scale`` (eps inside the root),
    one norm per sample (``across_spatial``) or per pixel over C; scale shared or per channel."""
    p = node.param.norm_param
    x_shape = ctx.in_shapes(node)[0]
    rank = len(x_shape)
    if rank < 2:
        raise ConversionError(f"Normalize needs a channel axis, input is {x_shape}", layer=node.name, line=node.line)
    (scale,) = weights_of(node, 1)
    channels = x_shape[1]
    scale = np.asarray(scale, np.float32).reshape(-1)
    if scale.size != (1 if p.channel_shared else channels):
        raise ConversionError(f"Normalize scale has {scale.size} values for "
                              f"{'channel_shared' if p.channel_shared else f'{channels} channels'}",
                              layer=node.name, line=node.line)
    layer = CaffeNormalize(channels, p.across_spatial, p.channel_shared, p.eps,
                           channel_axis=layout.to_keras_axis(1, rank), name=ctx.layer_name(node))
    y = layer(inputs[0])
    layer.set_weights([scale])
    return [y]


@translator("PriorBox")
def prior_box(node, inputs, ctx):
    """A constant computed at conversion time in Caffe's float arithmetic
    (:func:`caffe2tf.backend.prior_box.prior_boxes`; min/max sizes truncated to int)."""
    fmap, image = ctx.in_shapes(node)
    try:
        spec = PriorBoxSpec.from_param(node.param.prior_box_param)
    except ValueError as exc:
        raise ConversionError(f"PriorBox: {exc}", layer=node.name, line=node.line) from exc
    value = prior_boxes(spec, fmap[2:4], image[2:4])
    out_shape = tuple(ctx.out_shapes(node)[0])
    if value.shape != out_shape:
        raise ConversionError(f"PriorBox computed {value.shape}, shape inference says {out_shape}",
                              layer=node.name, line=node.line)
    layer = CaffeConstant(value.shape, name=ctx.layer_name(node))
    y = layer(inputs[0])
    layer.set_weights([value])
    return [y]


@translator("DetectionOutput")
def detection_output(node, inputs, ctx):
    """:class:`CaffeDetectionOutput`: Caffe's decoding, per-class top_k and greedy NMS
    (overlap ``<=`` threshold kept, adaptive eta), keep_top_k, rows in Caffe's order;
    output NHWC ``(1, rows, 7, 1)`` = Caffe's ``[1, 1, rows, 7]``."""
    p = node.param.detection_output_param
    loc_shape, conf_shape, prior_shape = ctx.in_shapes(node)
    if p.save_output_param.output_directory or p.visualize:
        # weiliu89's generated deploy prototxts carry them; in Caffe they only write result
        # files or open a window beside the top, which they leave unchanged.
        log.warning("layer '%s': DetectionOutput's save_output_param/visualize (files and windows "
                    "in Caffe) ignored; the detections are unchanged", node.name)
    if p.code_type not in CODE_TYPE_NAMES:
        raise ConversionError(f"unknown DetectionOutput code_type {p.code_type}", layer=node.name, line=node.line)
    num_priors = prior_shape[2] // 4
    nms = p.nms_param
    layer = CaffeDetectionOutput(
        num_classes=p.num_classes, num_priors=num_priors, share_location=p.share_location,
        background_label_id=p.background_label_id, nms_threshold=nms.nms_threshold,
        top_k=nms.top_k if nms.HasField("top_k") else -1, eta=nms.eta, keep_top_k=p.keep_top_k,
        confidence_threshold=p.confidence_threshold if p.HasField("confidence_threshold") else NO_THRESHOLD,
        code_type=CODE_TYPE_NAMES[p.code_type], variance_encoded_in_target=p.variance_encoded_in_target,
        nhwc_inputs=[len(s) == 4 for s in (loc_shape, conf_shape, prior_shape)], name=ctx.layer_name(node))
    return [layer(list(inputs))]
