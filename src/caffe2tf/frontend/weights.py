"""Reading a .caffemodel through a weights-only view of the protobuf wire format.

A caffemodel is a serialized ``NetParameter``. Of it we need, per layer, only its
name, its type and its blobs. Parsing the whole message with the generated
stubs would (a) interpret every layer parameter, which breaks on forks that
store their parameters under field numbers BVLC uses for something else, and
(b) copy every float through Python objects. So we walk the wire format
ourselves and read only:

* ``NetParameter.layer`` (100) -> ``name`` (1), ``type`` (2), ``blobs`` (7)
* ``NetParameter.layers`` (2, V1) -> ``name`` (4), ``type`` (5, enum), ``blobs`` (6)
* ``BlobProto``: ``shape`` (7) -> ``dim`` (1), ``data`` (5), ``double_data`` (8),
  legacy ``num/channels/height/width`` (1-4)

Everything else is skipped by length without being looked at. Packed float data
is read with ``readinto`` straight into the numpy array that is returned, so the
file's bytes are touched once and peak memory stays near the size of the
weights.
"""
from __future__ import annotations

import io
import math
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Sequence

import numpy as np

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.errors import WeightsError

if TYPE_CHECKING:
    from caffe2tf.ir import Graph, Node

log = logging.getLogger(__name__)

_V1_TYPE_NAMES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


def v1_type_name(enum_value: int) -> str:
    """V1 ``LayerType`` enum value -> V2 type string ("CONVOLUTION" (4) -> "Convolution")."""
    try:
        enum_name = caffe_pb2.V1LayerParameter.LayerType.Name(enum_value)
    except ValueError:
        return f"V1Type{enum_value}"
    return _V1_TYPE_NAMES.get(enum_name, enum_name)


@dataclass(frozen=True)
class LayerWeights:
    name: str
    type: str
    blobs: tuple[np.ndarray, ...]  # float32, in the shape stored in the file


MAX_BLOB_DIMS = 32
_RUN_RECORDS = 1 << 20  # unpacked values parsed per vectorised chunk


class _Reader:
    """Sequential wire-format reader over a file, with explicit end bounds."""

    def __init__(self, f: BinaryIO, path: str, size: int) -> None:
        self.f = f
        self.path = path
        self.size = size
        self.pos = 0
        self.layer: str | None = None  # the layer being read, for messages

    def fail(self, msg: str) -> WeightsError:
        return WeightsError(f"{msg} (at byte {self.pos}); the file is truncated or not a caffemodel",
                            file=self.path, layer=self.layer)

    def read(self, n: int, end: int) -> bytes:
        if n < 0 or self.pos + n > end:
            raise self.fail(f"a field of {n} bytes runs past the end of its message")
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail("unexpected end of file")
        self.pos += n
        return data

    def skip(self, n: int, end: int) -> None:
        if n < 0 or self.pos + n > end:
            raise self.fail(f"a field of {n} bytes runs past the end of its message")
        self.f.seek(n, io.SEEK_CUR)
        self.pos += n

    def varint(self, end: int) -> int:
        result = 0
        shift = 0
        while True:
            if self.pos >= end:
                raise self.fail("a number runs past the end of its message")
            b = self.f.read(1)
            if not b:
                raise self.fail("unexpected end of file")
            self.pos += 1
            byte = b[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift >= 70:
                raise self.fail("malformed varint")

    def key(self, end: int) -> tuple[int, int]:
        k = self.varint(end)
        field, wire = k >> 3, k & 7
        if field == 0 or wire in (6, 7):
            raise self.fail(f"invalid field key {k}")
        return field, wire

    def length(self, end: int) -> int:
        n = self.varint(end)
        if self.pos + n > end:
            raise self.fail(f"a field of {n} bytes runs past the end of its message")
        return n

    def sub_end(self, end: int) -> int:
        """Read a length prefix; return where that submessage ends."""
        n = self.length(end)
        return self.pos + n

    def skip_field(self, wire: int, end: int) -> None:
        if wire == 0:
            self.varint(end)
        elif wire == 1:
            self.skip(8, end)
        elif wire == 2:
            self.skip(self.length(end), end)
        elif wire == 5:
            self.skip(4, end)
        else:  # groups (3/4) are not used by Caffe
            raise self.fail(f"unsupported wire type {wire}")

    def float_array(self, n_bytes: int, end: int, dtype: str) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        if n_bytes % itemsize:
            raise self.fail(f"packed data of {n_bytes} bytes is not a whole number of {dtype}")
        if self.pos + n_bytes > end:
            raise self.fail("packed data runs past the end of its message")
        arr = np.empty(n_bytes // itemsize, dtype=dtype)
        got = self.f.readinto(memoryview(arr).cast("B"))
        if got != n_bytes:
            raise self.fail("unexpected end of file inside blob data")
        self.pos += n_bytes
        return arr

    def unpacked_run(self, end: int, tag: int, dtype: str) -> np.ndarray:
        """Values of consecutive unpacked fields whose one-byte key is ``tag``; the first
        key has been read. Parsed in vectorised chunks, not one Python read per value."""
        itemsize = np.dtype(dtype).itemsize
        rec = itemsize + 1
        parts = [np.frombuffer(self.read(itemsize, end), dtype)]
        while True:
            n = min((end - self.pos) // rec, _RUN_RECORDS)
            if n == 0:
                break
            raw = np.frombuffer(self.read(n * rec, end), np.uint8).reshape(n, rec)
            other = np.flatnonzero(raw[:, 0] != tag)
            k = int(other[0]) if other.size else n
            parts.append(raw[:k, 1:].copy().view(dtype).reshape(-1))
            if k < n:  # another field follows the run: give its bytes back
                back = (n - k) * rec
                self.f.seek(-back, io.SEEK_CUR)
                self.pos -= back
                break
        return _concat(parts)


def _read_shape(r: _Reader, end: int) -> list[int]:
    dims: list[int] = []
    while r.pos < end:
        field, wire = r.key(end)
        if field == 1 and wire == 2:  # packed dims
            sub_end = r.sub_end(end)
            while r.pos < sub_end:
                dims.append(_signed64(r.varint(sub_end)))
        elif field == 1 and wire == 0:
            dims.append(_signed64(r.varint(end)))
        else:
            r.skip_field(wire, end)
        if len(dims) > MAX_BLOB_DIMS:
            raise r.fail(f"blob shape has more than {MAX_BLOB_DIMS} dimensions")
    return dims


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _read_blob(r: _Reader, end: int, where: str) -> np.ndarray:
    shape: list[int] | None = None
    legacy = [0, 0, 0, 0]
    has_legacy = False
    chunks: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    while r.pos < end:
        field, wire = r.key(end)
        if field == 7 and wire == 2:
            shape = _read_shape(r, r.sub_end(end))
        elif field in (5, 8) and wire == 2:  # packed float / double
            arr = r.float_array(r.length(end), end, "<f4" if field == 5 else "<f8")
            (chunks if field == 5 else doubles).append(arr)
        elif field == 5 and wire == 5:  # unpacked float
            chunks.append(r.unpacked_run(end, (5 << 3) | 5, "<f4"))
        elif field == 8 and wire == 1:  # unpacked double
            doubles.append(r.unpacked_run(end, (8 << 3) | 1, "<f8"))
        elif field in (1, 2, 3, 4) and wire == 0:
            legacy[field - 1] = _signed64(r.varint(end))
            has_legacy = True
        else:
            r.skip_field(wire, end)
    data = _concat(chunks) if chunks else (_doubles_to_float32(_concat(doubles), where, r.path) if doubles else
                                            np.empty(0, np.float32))
    if chunks and doubles:
        raise WeightsError(f"{where}: blob has both float and double data", file=r.path)
    if shape is None:
        shape = legacy if has_legacy else [data.size]
    if any(d < 0 for d in shape):
        raise WeightsError(f"{where}: blob shape {shape} has a negative dimension", file=r.path)
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if count != data.size:
        raise WeightsError(f"{where}: blob shape {tuple(shape)} needs {count} values, "
                           f"the file holds {data.size}", file=r.path)
    try:
        return data.astype(np.float32, copy=False).reshape(shape)
    except ValueError:  # e.g. (2**40, 2**40, 0): no values, but numpy cannot index it
        raise WeightsError(f"{where}: blob shape {tuple(shape)} is not a plausible shape", file=r.path) from None


def _doubles_to_float32(values: np.ndarray, where: str, path: str) -> np.ndarray:
    """Caffe's cast of ``double_data`` to float; values beyond float32's range become inf, with a warning."""
    with np.errstate(over="ignore"):
        data = values.astype(np.float32)
    if np.isinf(data).sum() > np.isinf(values).sum():
        log.warning("%s: %s: double values beyond the float32 range became inf", path, where)
    return data


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _read_layer(r: _Reader, end: int, v1: bool, index: int) -> LayerWeights:
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    name = r.layer = f"#{index}"
    ltype = ""
    blobs: list[np.ndarray] = []
    while r.pos < end:
        field, wire = r.key(end)
        if field == name_field and wire == 2:
            name = _text(r.read(r.length(end), end), r)
            r.layer = name
        elif field == type_field and not v1 and wire == 2:
            ltype = _text(r.read(r.length(end), end), r)
        elif field == type_field and v1 and wire == 0:
            ltype = v1_type_name(r.varint(end))
        elif field == blobs_field and wire == 2:
            blob_end = r.sub_end(end)
            blobs.append(_read_blob(r, blob_end, f"layer '{name}' blob {len(blobs)}"))
        else:
            r.skip_field(wire, end)
    r.layer = None
    return LayerWeights(name=name, type=ltype, blobs=tuple(blobs))


def _text(raw: bytes, r: _Reader) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise r.fail("a layer name is not valid UTF-8") from None


def read_caffemodel(path: str | Path) -> list[LayerWeights]:
    """All layers of a caffemodel that carry a name, type or blobs, in file order."""
    p = str(path)
    try:
        size = os.path.getsize(p)
        f = open(p, "rb", buffering=1 << 16)
    except OSError as exc:
        raise WeightsError(f"cannot read: {exc.strerror or exc}", file=p) from None
    layers: list[LayerWeights] = []
    with f:
        r = _Reader(f, p, size)
        while r.pos < size:
            field, wire = r.key(size)
            if field in (100, 2) and wire == 2:
                end = r.sub_end(size)
                layers.append(_read_layer(r, end, v1=(field == 2), index=len(layers)))
            else:
                r.skip_field(wire, size)
    if not layers:
        log.debug("%s holds no layers", p)
    log.debug("read %d layers from %s", len(layers), p)
    return layers


# ------------------------------------------------ matching blobs to the graph

def _type_counts(types: list[str]) -> str:
    from caffe2tf.frontend.net_checks import type_counts
    return type_counts(types)


def _strip_ones(shape: Sequence[int]) -> tuple[int, ...]:
    s = list(shape)
    while s and s[0] == 1:
        s.pop(0)
    while s and s[-1] == 1:
        s.pop()
    return tuple(s)


def canonical_blob(blob: np.ndarray, expected: tuple[int, ...], layer: str, index: int, path: str) -> np.ndarray:
    """Reshape a stored blob to the canonical shape if they differ only by leading/trailing 1s."""
    if tuple(blob.shape) == tuple(expected):
        return blob
    if _strip_ones(blob.shape) == _strip_ones(expected) and blob.size == math.prod(expected):
        return blob.reshape(expected)
    raise WeightsError(f"blob {index} has shape {tuple(blob.shape)}, the layer needs {tuple(expected)}",
                       file=path, layer=layer)


def attach_weights(graph: Graph, stored: list[LayerWeights], path: str, *, allow_missing: bool = False) -> None:
    """Match caffemodel layers to graph nodes by name; check and canonicalise their blobs."""
    by_name: dict[str, LayerWeights] = {}
    for lw in stored:
        if lw.blobs:
            by_name[lw.name] = lw
    missing: list[str] = []
    used: set[str] = set()
    for i, node in enumerate(graph.nodes):
        expected = _expected_blobs(graph, node)
        lw = by_name.get(node.name)
        if lw is not None:
            used.add(node.name)
        if expected is None:  # unsupported type: keep whatever is stored
            if lw is not None:
                graph.nodes[i] = node.with_(weights=tuple(lw.blobs))
            continue
        if not expected:
            if lw is not None:
                raise WeightsError(f"the caffemodel holds {len(lw.blobs)} blob(s) for this {node.type} layer, "
                                   "which takes none", file=path, layer=node.name)
            continue
        if lw is None:
            missing.append(node.name)
            continue
        if len(lw.blobs) != len(expected):
            raise WeightsError(f"{node.type} needs {len(expected)} blob(s), the caffemodel holds {len(lw.blobs)}",
                               file=path, layer=node.name)
        blobs = tuple(canonical_blob(b, e, node.name, k, path) for k, (b, e) in enumerate(zip(lw.blobs, expected)))
        graph.nodes[i] = node.with_(weights=blobs)
    if missing and not allow_missing:
        raise WeightsError(f"no weights for {len(missing)} layer(s): {', '.join(missing[:10])}"
                           + (" ..." if len(missing) > 10 else ""), file=path)
    in_net = {n.name for n in graph.nodes}
    extra = [lw for lw in stored if lw.name not in in_net]
    if extra:  # real caffemodels carry training-time layers: one line for all of them
        log.warning("%s: ignoring %d layer(s) the net does not use (%s): %s%s", path, len(extra),
                    _type_counts([lw.type for lw in extra]), ", ".join(lw.name for lw in extra[:5]),
                    " ..." if len(extra) > 5 else "")


def _expected_blobs(graph: Graph, node: Node) -> list[tuple[int, ...]] | None:
    from caffe2tf.frontend import readings
    from caffe2tf.frontend import shapes as shape_rules

    if node.type == "Input" or not shape_rules.has_rule(node.type):
        return [] if node.type == "Input" else None
    in_shapes = graph.input_shapes(node)
    if any(s is None for s in in_shapes):
        return None
    if readings.is_clashing(node.type) and node.reading is None:
        return None
    return list(shape_rules.infer(node.param, in_shapes, node.reading).blobs)  # type: ignore[arg-type]
