"""Reading caffemodels through the weights-only wire-format view (caffe2tf.frontend.weights)."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.message import DecodeError

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.caffemodel_writer import (encode_varint, field_key, length_delimited, v1_type_enum,
                                                  write_caffemodel)
from caffe2tf.frontend import weights as weights_mod
from caffe2tf.frontend.weights import read_caffemodel, v1_type_name
from caffe2tf.errors import Caffe2TFError, WeightsError

RNG = np.random.default_rng(7)
CONV_W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
CONV_B = RNG.standard_normal(4).astype(np.float32)
IP_W = RNG.standard_normal((5, 36)).astype(np.float32)
LAYERS = [("conv1", "Convolution", [CONV_W, CONV_B]), ("relu1", "ReLU", []), ("fc", "InnerProduct", [IP_W])]


def _one_line(exc: Caffe2TFError) -> str:
    msg = str(exc)
    assert len(msg.splitlines()) == 1, msg
    return msg


@pytest.mark.parametrize("v1, packed, legacy, double", list(itertools.product([False, True], repeat=4)),
                         ids=lambda v: str(int(v)))
def test_round_trip_every_flavour(tmp_path: Path, v1: bool, packed: bool, legacy: bool, double: bool) -> None:
    path = tmp_path / "m.caffemodel"
    write_caffemodel(path, LAYERS, v1=v1, packed=packed, legacy_shape=legacy, double=double, name="net")
    got = read_caffemodel(path)
    assert [(l.name, l.type, len(l.blobs)) for l in got] == [(n, t, len(b)) for n, t, b in LAYERS]
    for (_, _, want), layer in zip(LAYERS, got):
        for w, b in zip(want, layer.blobs):
            assert b.dtype == np.float32
            expected_shape = (1,) * (4 - w.ndim) + w.shape if legacy else w.shape
            assert b.shape == expected_shape
            np.testing.assert_array_equal(b.reshape(w.shape), w)


def test_writer_output_parses_with_the_generated_stubs(tmp_path: Path) -> None:
    """Our writer speaks the real wire format: the protobuf runtime agrees on every field."""
    for v1, packed, double in itertools.product([False, True], repeat=3):
        path = tmp_path / "m.caffemodel"
        write_caffemodel(path, LAYERS, v1=v1, packed=packed, double=double, name="net")
        net = caffe_pb2.NetParameter.FromString(path.read_bytes())
        layers = net.layers if v1 else net.layer
        assert net.name == "net" and [l.name for l in layers] == ["conv1", "relu1", "fc"]
        blob = layers[0].blobs[0]
        values = np.array(blob.double_data if double else blob.data, dtype=np.float32)
        np.testing.assert_array_equal(values, CONV_W.ravel())
        if v1:
            assert layers[2].type == caffe_pb2.V1LayerParameter.INNER_PRODUCT
        else:
            assert list(blob.shape.dim) == [4, 3, 3, 3] and layers[2].type == "InnerProduct"


def test_double_data_becomes_float32(tmp_path: Path) -> None:
    values = np.array([1.0 + 2.0**-40, -3.5, 1e30], dtype=np.float64)
    write_caffemodel(tmp_path / "d.caffemodel", [("l", "Scale", [values])], double=True)
    (blob,) = read_caffemodel(tmp_path / "d.caffemodel")[0].blobs
    assert blob.dtype == np.float32
    np.testing.assert_array_equal(blob, values.astype(np.float32))


def _blob(*fields: bytes) -> bytes:
    return b"".join(fields)


def _float_fields(values: np.ndarray) -> bytes:
    return b"".join(field_key(5, 5) + np.float32(v).tobytes() for v in values)


def _layer(name: str, ltype: str, blobs: list[bytes], *extra: bytes) -> bytes:
    body = length_delimited(1, name.encode()) + length_delimited(2, ltype.encode())
    body += b"".join(length_delimited(7, b) for b in blobs) + b"".join(extra)
    return length_delimited(100, body)


def _shape(*dims: int) -> bytes:
    return length_delimited(7, length_delimited(1, b"".join(encode_varint(d) for d in dims)))


def test_blob_fields_in_any_order_and_split_data(tmp_path: Path) -> None:
    """Data before the shape, unpacked runs broken by other fields, packed data in two pieces."""
    v = np.arange(12, dtype=np.float32)
    blobs = [
        _blob(_float_fields(v[:5]), _shape(3, 4), field_key(6, 2) + encode_varint(0), _float_fields(v[5:])),
        _blob(length_delimited(5, v[:7].tobytes()), _shape(2, 6), length_delimited(5, v[7:].tobytes())),
        _blob(_float_fields(v[:1]), length_delimited(5, v[1:].tobytes()), _shape(12)),
        _blob(field_key(1, 0) + encode_varint(1), field_key(2, 0) + encode_varint(3),
              _float_fields(v), field_key(3, 0) + encode_varint(2), field_key(4, 0) + encode_varint(2)),
    ]
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_layer("l", "Scale", blobs))
    got = read_caffemodel(path)[0].blobs
    assert [b.shape for b in got] == [(3, 4), (2, 6), (12,), (1, 3, 2, 2)]
    for b in got:
        np.testing.assert_array_equal(b.ravel(), v)


def test_unpacked_run_is_vectorised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpacked values (old writers) are parsed in chunks, not with one read per value."""
    v = RNG.standard_normal(300_000).astype(np.float32)
    write_caffemodel(tmp_path / "u.caffemodel", [("l", "Scale", [v, v[:3]])], packed=False)
    calls = []
    original = weights_mod._Reader.read
    monkeypatch.setattr(weights_mod._Reader, "read", lambda self, n, end: calls.append(n) or original(self, n, end))
    blob, small = read_caffemodel(tmp_path / "u.caffemodel")[0].blobs
    np.testing.assert_array_equal(blob, v)
    np.testing.assert_array_equal(small, v[:3])
    assert len(calls) < 20


def test_blob_without_shape_is_flat(tmp_path: Path) -> None:
    path = tmp_path / "m.caffemodel"
    path.write_bytes(_layer("l", "Scale", [length_delimited(5, np.ones(3, np.float32).tobytes())]))
    assert read_caffemodel(path)[0].blobs[0].shape == (3,)


def test_fork_parameters_at_clashing_field_numbers_are_skipped(tmp_path: Path) -> None:
    """PSPNet's interp_param sits at 143 (BVLC's input_param) and other forks use 147 (BVLC's
    swish_param): their bytes may not even be valid for BVLC's message. The weights-only view never
    looks at them; the generated stubs choke on them."""
    interp_at_143 = length_delimited(143, field_key(1, 0) + encode_varint(473) + field_key(2, 0) + encode_varint(473))
    garbage_at_147 = length_delimited(147, b"\x0d\xff\xff")  # float field 1 with 2 of its 4 bytes
    varint_at_143 = field_key(143, 0) + encode_varint(2**63)
    convolution = length_delimited(106, field_key(1, 0) + encode_varint(4))  # a normal parameter too
    path = tmp_path / "fork.caffemodel"
    path.write_bytes(_layer("interp", "Interp", [], interp_at_143, garbage_at_147)
                     + _layer("conv", "Convolution", [_shape(4, 3, 3, 3) + length_delimited(5, CONV_W.tobytes())],
                              convolution, varint_at_143))
    got = read_caffemodel(path)
    assert [(l.name, l.type) for l in got] == [("interp", "Interp"), ("conv", "Convolution")]
    np.testing.assert_array_equal(got[1].blobs[0], CONV_W)
    with pytest.raises(DecodeError):
        caffe_pb2.NetParameter.FromString(path.read_bytes())


def test_writer_extra_bytes_and_unknown_top_level_fields(tmp_path: Path) -> None:
    path = tmp_path / "m.caffemodel"
    write_caffemodel(path, [("interp", "Interp", [], length_delimited(143, b"\xff\xff\xff")),
                            ("conv", "Convolution", [CONV_W])], name="n")
    with open(path, "ab") as f:  # NetParameter.input, state, debug_info and an unknown fixed64
        f.write(length_delimited(3, b"data") + length_delimited(6, b"\x08\x01") + field_key(7, 0) + b"\x01"
                + field_key(999, 1) + bytes(8))
    got = read_caffemodel(path)
    assert [l.name for l in got] == ["interp", "conv"]


def test_v1_type_names() -> None:
    assert v1_type_name(caffe_pb2.V1LayerParameter.INNER_PRODUCT) == "InnerProduct"
    assert v1_type_name(caffe_pb2.V1LayerParameter.SOFTMAX_LOSS) == "SoftmaxWithLoss"
    assert v1_type_name(caffe_pb2.V1LayerParameter.RELU) == "ReLU"
    assert v1_type_name(10**6) == "V1Type1000000"
    assert v1_type_enum("Convolution") == caffe_pb2.V1LayerParameter.CONVOLUTION


def test_empty_file_has_no_layers(tmp_path: Path) -> None:
    (tmp_path / "e.caffemodel").write_bytes(b"")
    assert read_caffemodel(tmp_path / "e.caffemodel") == []


@pytest.mark.parametrize("blob, fragment", [
    (_shape(2, 3) + length_delimited(5, np.ones(5, np.float32).tobytes()), "needs 6 values, the file holds 5"),
    (_shape(2, -3) + length_delimited(5, b""), "negative dimension"),
    (length_delimited(5, np.ones(2, np.float32).tobytes()) + length_delimited(8, np.ones(2).tobytes()),
     "both float and double"),
    (length_delimited(5, b"\0" * 7), "not a whole number"),
    (_shape(2**40, 2**40, 0), "not a plausible shape"),
    (length_delimited(7, length_delimited(1, encode_varint(1) * 40)), "more than 32 dimensions"),
])
def test_malformed_blobs_name_file_and_layer(tmp_path: Path, blob: bytes, fragment: str) -> None:
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(_layer("conv1", "Convolution", [blob]))
    with pytest.raises(WeightsError) as info:
        read_caffemodel(path)
    msg = _one_line(info.value)
    assert msg.startswith(str(path)) and fragment in msg and "conv1" in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as info:
        read_caffemodel(tmp_path / "nope.caffemodel")
    assert _one_line(info.value).startswith(str(tmp_path / "nope.caffemodel"))
