"""Which fork's meaning a clashing layer type name has, decided from evidence.

Two Caffe forks each define a layer called ``BN`` and two define one called
``Upsample``, with different blobs and different maths:

=========  ===========  ===============================================================
type       reading      evidence
=========  ===========  ===============================================================
BN         ``pspnet``   4 blobs in the caffemodel (slope, bias, mean, variance);
                        ``bn_param`` sets slope_filler / bias_filler / momentum / eps /
                        frozen / engine (hszhao/PSPNet's fields)
BN         ``segnet``   2 blobs (scale, shift); ``bn_param`` sets bn_mode /
                        scale_filler / shift_filler (SegNet/ENet's fields)
Upsample   ``nearest``  1 bottom (YOLO forks: nearest-neighbour by ``scale``)
Upsample   ``unpool``   2 bottoms, the second the mask top of a MAX Pooling (SegNet/ENet
                        max-unpooling); scale_h / scale_w / pad_out_h / pad_out_w /
                        upsample_h / upsample_w exist only in that fork
=========  ===========  ===============================================================

Every piece of evidence must agree; contradictory evidence is an error naming the
layer and the readings it could have, and so is a layer that gives none when a
caffemodel is read (without one, ``inspect`` shows the layer as undecided: its
output shape is the same either way). Nothing here guesses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.errors import Caffe2TFError, PrototxtError

READINGS: dict[str, dict[str, str]] = {
    "BN": {"pspnet": "PSPNet's BN: 4 blobs slope, bias, mean, variance",
           "segnet": "SegNet/ENet's BN: 2 blobs scale, shift"},
    "Upsample": {"nearest": "YOLO's nearest-neighbour Upsample: 1 bottom",
                 "unpool": "SegNet/ENet's max-unpooling Upsample: 2 bottoms, values and a MAX Pooling mask"},
}
BN_BLOB_COUNTS = {"pspnet": 4, "segnet": 2}
PSPNET_BN_FIELDS = ("slope_filler", "bias_filler", "momentum", "eps", "frozen", "engine")
SEGNET_BN_FIELDS = ("bn_mode", "scale_filler", "shift_filler")
UNPOOL_ONLY_FIELDS = ("scale_h", "scale_w", "pad_out_h", "pad_out_w", "upsample_h", "upsample_w")
# Internal to shape inference: a BN whose reading cannot be known without the caffemodel.
UNDECIDED = "undecided"


def is_clashing(layer_type: str) -> bool:
    return layer_type in READINGS


@dataclass(frozen=True)
class Evidence:
    reading: str
    what: str  # e.g. "bn_param sets eps", "the caffemodel holds 4 blobs"


def _alternatives(layer_type: str) -> str:
    return " or ".join(f"'{r}' ({d})" for r, d in READINGS[layer_type].items())


def undecidable_message(layer_type: str) -> str:
    if layer_type == "BN":
        hint = (f"neither its bn_param (PSPNet's {'/'.join(PSPNET_BN_FIELDS)}; SegNet/ENet's "
                f"{'/'.join(SEGNET_BN_FIELDS)}) nor a caffemodel says which fork's layer it is")
    else:
        hint = "nothing says which fork's layer it is"
    return f"{hint}; it could be {_alternatives(layer_type)}"


def _set_fields(msg, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if msg.HasField(n)]


def bn_evidence(param: caffe_pb2.LayerParameter, n_blobs: int | None) -> list[Evidence]:
    """Evidence from bn_param's fields and, when a caffemodel is read, its blob count."""
    ev: list[Evidence] = []
    if param.HasField("bn_param"):
        for f in _set_fields(param.bn_param, PSPNET_BN_FIELDS):
            ev.append(Evidence("pspnet", f"bn_param sets {f}"))
        for f in _set_fields(param.bn_param, SEGNET_BN_FIELDS):
            ev.append(Evidence("segnet", f"bn_param sets {f}"))
    if n_blobs is not None:
        by_count = {n: r for r, n in BN_BLOB_COUNTS.items()}
        if n_blobs not in by_count:
            raise PrototxtError(f"BN: the caffemodel holds {n_blobs} blob(s) for it, which matches no fork's BN; "
                                f"it could be {_alternatives('BN')}")
        ev.append(Evidence(by_count[n_blobs], f"the caffemodel holds {n_blobs} blobs"))
    return ev


def upsample_evidence(param: caffe_pb2.LayerParameter, n_bottoms: int) -> list[Evidence]:
    """Evidence from the bottom count and the SegNet/ENet-only fields of upsample_param."""
    if n_bottoms not in (1, 2):
        raise PrototxtError(f"Upsample has {n_bottoms} bottom(s); it could be {_alternatives('Upsample')}")
    ev = [Evidence("nearest" if n_bottoms == 1 else "unpool", f"it has {n_bottoms} bottom(s)")]
    if param.HasField("upsample_param"):
        for f in _set_fields(param.upsample_param, UNPOOL_ONLY_FIELDS):
            ev.append(Evidence("unpool", f"upsample_param sets {f}"))
    return ev


def decide(layer_type: str, evidence: list[Evidence]) -> str | None:
    """The one reading all evidence supports; ``None`` without evidence; an error when it disagrees."""
    readings = sorted({e.reading for e in evidence})
    if len(readings) > 1:
        parts = "; ".join(f"{r}: " + ", ".join(e.what for e in evidence if e.reading == r) for r in readings)
        raise PrototxtError(f"{layer_type}: contradictory evidence which fork's layer this is ({parts}); "
                            f"it could be {_alternatives(layer_type)}")
    return readings[0] if readings else None


def reading_from_layer(param: caffe_pb2.LayerParameter, n_bottoms: int,
                       n_blobs: int | None = None) -> str | None:
    """The reading the layer's own parameters and bottoms (and blob count, if known) give."""
    if param.type == "BN":
        return decide("BN", bn_evidence(param, n_blobs))
    if param.type == "Upsample":
        return decide("Upsample", upsample_evidence(param, n_bottoms))
    return None


def canonical_param(param: caffe_pb2.LayerParameter, reading: str | None) -> None:
    """Write a fork default the schema cannot hold into ``param`` (in place): a YOLO
    ``nearest`` Upsample without ``scale`` has the YOLO forks' default 1, not SegNet's 2."""
    if param.type == "Upsample" and reading == "nearest" and not param.upsample_param.HasField("scale"):
        param.upsample_param.scale = 1


def decide_layer_reading(p: caffe_pb2.LayerParameter, line: int | None, inputs: list[str],
                    produced_by: Mapping[str, tuple[caffe_pb2.LayerParameter, int]],
                    blob_counts: Mapping[str, int] | None, path: str) -> str | None:
    """The fork reading of a clashing layer from all the evidence the reader has.

    ``produced_by`` maps a value id to the producing layer and its top index (the
    mask check); ``blob_counts`` is the caffemodel's blobs per layer name, ``None``
    without a caffemodel. Returns ``None`` only when undecidable without a caffemodel;
    raises a one-line error naming the file, line and layer otherwise.
    """
    try:
        if p.type == "BN":
            n_blobs = None if blob_counts is None else blob_counts.get(p.name)
            reading = decide("BN", bn_evidence(p, n_blobs))
        else:
            reading = decide("Upsample", upsample_evidence(p, len(inputs)))
    except Caffe2TFError as exc:
        raise PrototxtError(exc.message, file=path, line=line, layer=p.name) from None
    if reading == "unpool":
        producer = produced_by.get(inputs[1])
        if (producer is None or producer[0].type != "Pooling" or producer[1] != 1
                or producer[0].pooling_param.pool != caffe_pb2.PoolingParameter.MAX):
            what = (f"top {producer[1]} of {producer[0].type} layer '{producer[0].name}'" if producer
                    else "not produced by a layer")
            raise PrototxtError(f"Upsample with 2 bottoms is SegNet/ENet max-unpooling, whose second bottom must be "
                                f"the mask (second top) of a MAX Pooling layer; '{p.bottom[1]}' is {what}",
                                file=path, line=line, layer=p.name)
    if reading is None and blob_counts is not None:
        raise PrototxtError(f"BN: {undecidable_message('BN')} (the caffemodel holds no blobs for it)",
                            file=path, line=line, layer=p.name)
    return reading
