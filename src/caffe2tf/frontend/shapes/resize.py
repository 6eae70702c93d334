"""Resizing layers: PSPNet/DeepLab Interp and both forks' Upsample."""
from __future__ import annotations

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.shapes._core import ShapeResult, need, need_4d, reading_rule, rule
from caffe2tf.errors import ShapeError


def interp_size(p: caffe_pb2.InterpParameter, h: int, w: int) -> tuple[int, int]:
    """PSPNet/DeepLab Interp output size (pad_beg/pad_end <= 0 crop the input first)."""
    if p.pad_beg > 0 or p.pad_end > 0:
        raise ShapeError("Interp supports only pad_beg/pad_end <= 0")
    he, we = h + p.pad_beg + p.pad_end, w + p.pad_beg + p.pad_end
    if he <= 0 or we <= 0:
        raise ShapeError(f"Interp pads leave an empty input ({he}x{we})")
    zoom, shrink = p.HasField("zoom_factor"), p.HasField("shrink_factor")
    if zoom and p.zoom_factor < 1 or shrink and p.shrink_factor < 1:
        raise ShapeError("Interp zoom_factor and shrink_factor must be >= 1")
    if shrink and not zoom:
        return (he - 1) // p.shrink_factor + 1, (we - 1) // p.shrink_factor + 1
    if zoom and not shrink:
        return he + (he - 1) * (p.zoom_factor - 1), we + (we - 1) * (p.zoom_factor - 1)
    if p.HasField("height") and p.HasField("width"):
        return p.height, p.width
    if zoom and shrink:
        ho, wo = (he - 1) // p.shrink_factor + 1, (we - 1) // p.shrink_factor + 1
        return ho + (ho - 1) * (p.zoom_factor - 1), wo + (wo - 1) * (p.zoom_factor - 1)
    raise ShapeError("Interp needs zoom_factor, shrink_factor, or height and width")


@rule("Interp")
def _interp(param, in_shapes):
    need(in_shapes, (1, 2), "Interp")
    x = in_shapes[0]
    if len(x) != 4:
        raise ShapeError(f"Interp needs a 4-D input, got {x}")
    if len(in_shapes) == 2:
        if len(in_shapes[1]) != 4:
            raise ShapeError(f"Interp's size bottom must be 4-D, got {in_shapes[1]}")
        return ShapeResult([(x[0], x[1], in_shapes[1][2], in_shapes[1][3])])
    h, w = interp_size(param.interp_param, x[2], x[3])
    return ShapeResult([(x[0], x[1], h, w)])


def nearest_scale(p: caffe_pb2.UpsampleParameter) -> int:
    """YOLO Upsample's factor: ``scale``, whose default in the YOLO forks is 1 (ours holds SegNet's 2)."""
    return p.scale if p.HasField("scale") else 1


def unpool_size(p: caffe_pb2.UpsampleParameter, h: int, w: int) -> tuple[int, int]:
    """SegNet/ENet Upsample's output size, with the fork's checks (upsample_layer.cpp LayerSetUp)."""
    if p.HasField("upsample_h") or p.HasField("upsample_w"):
        if not (p.HasField("upsample_h") and p.HasField("upsample_w")):
            raise ShapeError("Upsample needs both upsample_h and upsample_w")
        if p.upsample_h <= 1 or p.upsample_w <= 1:
            raise ShapeError(f"Upsample upsample_h/upsample_w must be > 1, got {p.upsample_h}x{p.upsample_w}")
        return p.upsample_h, p.upsample_w
    if p.HasField("scale_h") != p.HasField("scale_w"):
        raise ShapeError("Upsample needs both scale_h and scale_w (or scale, or upsample_h and upsample_w)")
    if p.HasField("scale_h"):
        if p.HasField("scale"):
            raise ShapeError("Upsample takes scale or scale_h/scale_w, not both")
        sh, sw = p.scale_h, p.scale_w
    else:
        sh = sw = p.scale
    if sh <= 1 or sw <= 1:
        raise ShapeError(f"Upsample scale must be > 1, got {sh}x{sw}")
    if p.pad_out_h and sh != 2 or p.pad_out_w and sw != 2:
        raise ShapeError("Upsample pad_out_h/pad_out_w need scale 2")
    return h * sh - int(p.pad_out_h), w * sw - int(p.pad_out_w)


@reading_rule("Upsample")
def _upsample(param, in_shapes, reading):
    """``nearest`` (YOLO): 1 bottom, (N, C, H*s, W*s). ``unpool`` (SegNet/ENet): bottoms
    (values, mask of a MAX Pooling) of one shape; top upsample_h x upsample_w or H*scale - pad_out."""
    p = param.upsample_param
    x = in_shapes[0] if in_shapes else ()
    if reading == "nearest":
        need(in_shapes, 1, "Upsample (YOLO nearest)")
        need_4d(x, "Upsample")
        s = nearest_scale(p)
        if s < 1:
            raise ShapeError(f"Upsample scale must be >= 1, got {s}")
        return ShapeResult([(x[0], x[1], x[2] * s, x[3] * s)])
    if reading == "unpool":
        need(in_shapes, 2, "Upsample (SegNet/ENet unpooling)")
        need_4d(x, "Upsample")
        if tuple(in_shapes[1]) != tuple(x):
            raise ShapeError(f"Upsample's mask {in_shapes[1]} and values {x} differ in shape")
        h, w = unpool_size(p, x[2], x[3])
        return ShapeResult([(x[0], x[1], h, w)])
    raise ShapeError(f"Upsample reading {reading!r} is neither 'nearest' nor 'unpool'")
