"""Writing a .caffemodel (a serialized ``NetParameter``) straight from NumPy arrays.

The reader's counterpart, used by tests and benchmarks to make caffemodels of
every flavour found in the wild without Caffe:

* V2 ``NetParameter.layer`` (field 100) or legacy V1 ``NetParameter.layers``
  (field 2, enum layer types);
* blob data packed (one length-delimited field) or unpacked (one tagged field per
  value, as very old writers did), as ``float`` (``data``, field 5) or ``double``
  (``double_data``, field 8);
* blob shapes as ``BlobShape`` (field 7) or as the legacy 4-D
  ``num/channels/height/width`` (fields 1-4).

It streams: message lengths are computed from the arrays' sizes before anything is
written, and packed data goes from the array's buffer to the file without an
intermediate ``bytes`` copy (unpacked and double data are converted in bounded
chunks), so writing a 500 MB model needs no more memory than the arrays themselves.

A layer is ``(name, type, blobs)`` or ``(name, type, blobs, extra)``, where
``extra`` is raw, already-encoded ``LayerParameter`` fields appended to the layer
(e.g. a fork's parameter under a field number BVLC uses for something else).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Iterable, Sequence, Union

import numpy as np

from caffe2tf.caffe_proto import caffe_pb2

__all__ = ["write_caffemodel", "encode_varint", "field_key", "length_delimited", "v1_type_enum"]

LayerSpec = Union[tuple[str, str, Sequence[np.ndarray]], tuple[str, str, Sequence[np.ndarray], bytes]]

_CHUNK = 1 << 20  # values per chunk when data must be converted

# NetParameter / LayerParameter / V1LayerParameter / BlobProto field numbers.
_NET_LAYER, _NET_LAYERS_V1, _NET_NAME = 100, 2, 1
_LAYER_NAME, _LAYER_TYPE, _LAYER_BLOBS = 1, 2, 7
_V1_NAME, _V1_TYPE, _V1_BLOBS = 4, 5, 6
_BLOB_SHAPE, _BLOB_DATA, _BLOB_DOUBLE = 7, 5, 8


def encode_varint(n: int) -> bytes:
    """Protobuf base-128 varint (negative numbers as 64-bit two's complement)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_key(field: int, wire: int) -> bytes:
    """The tag of a field: ``(field << 3) | wire`` as a varint."""
    return encode_varint((field << 3) | wire)


def length_delimited(field: int, payload: bytes) -> bytes:
    """A complete length-delimited field (wire type 2)."""
    return field_key(field, 2) + encode_varint(len(payload)) + payload


def v1_type_enum(layer_type: str) -> int:
    """V2 type name -> V1 ``LayerType`` enum value ("Convolution" -> 4)."""
    from caffe2tf.frontend.weights import v1_type_name  # the inverse mapping

    for value in caffe_pb2.V1LayerParameter.LayerType.values():
        if v1_type_name(value) == layer_type:
            return value
    raise ValueError(f"layer type {layer_type!r} has no V1 enum value")


class _Blob:
    """One blob's header bytes and the size of its data field, computed up front."""

    def __init__(self, array: np.ndarray, *, packed: bool, legacy_shape: bool, double: bool) -> None:
        arr = np.asarray(array)
        self.values = np.ascontiguousarray(arr.reshape(-1), dtype="<f8" if double else "<f4")
        self.packed, self.double = packed, double
        shape = list(arr.shape)
        if legacy_shape:
            if len(shape) > 4:
                raise ValueError(f"a legacy 4-D blob shape cannot hold {shape}")
            dims = [1] * (4 - len(shape)) + shape
            self.head = b"".join(field_key(f, 0) + encode_varint(d) for f, d in zip((1, 2, 3, 4), dims))
        else:
            self.head = length_delimited(_BLOB_SHAPE, length_delimited(1, b"".join(encode_varint(d) for d in shape)))
        field = _BLOB_DOUBLE if double else _BLOB_DATA
        itemsize = 8 if double else 4
        n = self.values.size
        if packed:
            self.data_head = field_key(field, 2) + encode_varint(n * itemsize) if n else b""
            self.data_len = len(self.data_head) + n * itemsize
        else:
            self.data_head = b""
            self.tag = field_key(field, 1 if double else 5)
            self.data_len = n * (len(self.tag) + itemsize)
        self.size = len(self.head) + self.data_len

    def write(self, f: BinaryIO) -> None:
        f.write(self.head)
        if self.packed:
            if self.values.size:
                f.write(self.data_head)
                f.write(memoryview(self.values).cast("B"))
            return
        # Unpacked: tag + value per element, built in bounded chunks.
        tag = np.frombuffer(self.tag, dtype=np.uint8)
        itemsize = self.values.itemsize
        for start in range(0, self.values.size, _CHUNK):
            part = self.values[start:start + _CHUNK]
            buf = np.empty((part.size, tag.size + itemsize), dtype=np.uint8)
            buf[:, :tag.size] = tag
            buf[:, tag.size:] = part.view(np.uint8).reshape(part.size, itemsize)
            f.write(memoryview(buf).cast("B"))


def _layer_fields(name: str, ltype: str, v1: bool) -> bytes:
    if v1:
        return length_delimited(_V1_NAME, name.encode()) + field_key(_V1_TYPE, 0) + encode_varint(v1_type_enum(ltype))
    return length_delimited(_LAYER_NAME, name.encode()) + length_delimited(_LAYER_TYPE, ltype.encode())


def write_caffemodel(path: str | Path, layers: Iterable[LayerSpec], *, v1: bool = False, packed: bool = True,
                     legacy_shape: bool = False, double: bool = False, name: str | None = None) -> int:
    """Write a caffemodel holding ``layers``; returns the number of bytes written.

    Args:
        path: output file.
        layers: ``(name, type, blobs)`` or ``(name, type, blobs, extra_layer_bytes)``
            in net order; blobs are any-shaped arrays (written as float32, or
            float64 with ``double``).
        v1: write V1 ``layers`` (enum types, blobs at field 6) instead of ``layer``.
        packed: packed repeated data (what Caffe writes) or one field per value.
        legacy_shape: ``num/channels/height/width`` instead of ``BlobShape``
            (shapes of up to 4 dims, padded with leading 1s as Caffe did).
        double: store values in ``double_data`` instead of ``data``.
        name: optional ``NetParameter.name``.
    """
    blob_field = _V1_BLOBS if v1 else _LAYER_BLOBS
    net_field = _NET_LAYERS_V1 if v1 else _NET_LAYER
    with open(path, "wb") as f:
        if name:
            f.write(length_delimited(_NET_NAME, name.encode()))
        for spec in layers:
            lname, ltype, arrays = spec[0], spec[1], spec[2]
            extra = spec[3] if len(spec) > 3 else b""
            head = _layer_fields(lname, ltype, v1)
            blobs = [_Blob(a, packed=packed, legacy_shape=legacy_shape, double=double) for a in arrays]
            blob_prefixes = [field_key(blob_field, 2) + encode_varint(b.size) for b in blobs]
            body = len(head) + sum(len(p) + b.size for p, b in zip(blob_prefixes, blobs)) + len(extra)
            f.write(field_key(net_field, 2) + encode_varint(body))
            f.write(head)
            for prefix, blob in zip(blob_prefixes, blobs):
                f.write(prefix)
                blob.write(f)
            f.write(extra)
        f.flush()
        return os.fstat(f.fileno()).st_size
