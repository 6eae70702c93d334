"""The generated stubs match caffe.proto, and the schema keeps Caffe's wire numbers."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "regenerate_proto.py"
PROTO_DIR = REPO / "src" / "caffe2tf" / "caffe_proto"


def _check(script: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (a dev dependency) regenerates the stubs")
    return subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120)


def test_committed_stubs_are_fresh() -> None:
    result = _check(SCRIPT)
    assert result.returncode == 0, f"stale stubs: {result.stderr.strip()}"


def test_check_detects_a_stale_stub(tmp_path: Path) -> None:
    """The check itself can fail: a copy of the project whose caffe.proto gained a field."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / SCRIPT.name)
    proto_dir = tmp_path / "src" / "caffe2tf" / "caffe_proto"
    proto_dir.mkdir(parents=True)
    shutil.copy(PROTO_DIR / "caffe_pb2.py", proto_dir / "caffe_pb2.py")
    text = (PROTO_DIR / "caffe.proto").read_text()
    marker = "message BlobShape {\n"
    assert marker in text
    (proto_dir / "caffe.proto").write_text(text.replace(marker, marker + "  optional int32 stale_probe = 99;\n"))
    result = _check(tmp_path / "scripts" / SCRIPT.name)
    assert result.returncode == 1
    assert "stale" in result.stderr


@pytest.mark.parametrize("message, field, number", [
    ("NetParameter", "name", 1), ("NetParameter", "layers", 2), ("NetParameter", "input", 3),
    ("NetParameter", "input_dim", 4), ("NetParameter", "input_shape", 8), ("NetParameter", "layer", 100),
    ("LayerParameter", "name", 1), ("LayerParameter", "type", 2), ("LayerParameter", "blobs", 7),
    ("LayerParameter", "include", 8), ("LayerParameter", "exclude", 9),
    ("LayerParameter", "convolution_param", 106), ("LayerParameter", "input_param", 143),
    ("LayerParameter", "swish_param", 147),
    ("V1LayerParameter", "name", 4), ("V1LayerParameter", "type", 5), ("V1LayerParameter", "blobs", 6),
    ("BlobProto", "shape", 7), ("BlobProto", "data", 5), ("BlobProto", "double_data", 8),
    ("BlobProto", "num", 1), ("BlobProto", "channels", 2), ("BlobProto", "height", 3), ("BlobProto", "width", 4),
    ("PoolingParameter", "round_mode", 13),
])
def test_bvlc_field_numbers(message: str, field: str, number: int) -> None:
    """BVLC's numbers are the wire format of every caffemodel: they must never move."""
    assert getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[field].number == number


def test_fork_fields_do_not_take_bvlc_numbers() -> None:
    """Fork parameters whose own numbers clash with BVLC live at free numbers (>= 1000)."""
    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    for name in ("bn_param", "interp_param", "upsample_param"):
        assert fields[name].number >= 1000, name
    numbers = [f.number for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields]
    assert len(numbers) == len(set(numbers))


def test_both_pooling_spellings_parse() -> None:
    p = text_format.Parse("round_mode: FLOOR", caffe_pb2.PoolingParameter())
    assert p.round_mode == caffe_pb2.PoolingParameter.FLOOR and p.ceil_mode
    p = text_format.Parse("ceil_mode: false", caffe_pb2.PoolingParameter())
    assert not p.ceil_mode and p.round_mode == caffe_pb2.PoolingParameter.CEIL
