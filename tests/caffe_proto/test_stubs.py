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


@pytest.mark.parametrize("message, field, number", [
    # weiliu89/caffe (branch ssd) src/caffe/proto/caffe.proto
    ("LayerParameter", "permute_param", 202), ("LayerParameter", "prior_box_param", 203),
    ("LayerParameter", "detection_output_param", 204), ("LayerParameter", "norm_param", 206),
    ("NormalizeParameter", "across_spatial", 1), ("NormalizeParameter", "scale_filler", 2),
    ("NormalizeParameter", "channel_shared", 3), ("NormalizeParameter", "eps", 4),
    ("PriorBoxParameter", "clip", 5), ("PriorBoxParameter", "offset", 13),
    ("DetectionOutputParameter", "keep_top_k", 7), ("DetectionOutputParameter", "variance_encoded_in_target", 8),
    ("SaveOutputParameter", "resize_param", 7),
    # hszhao/PSPNet BNParameter keeps its numbers; SegNet/ENet's fields are renumbered (theirs clash)
    ("BNParameter", "slope_filler", 1), ("BNParameter", "eps", 4), ("BNParameter", "frozen", 5),
    # SegNet/ENet UpsampleParameter
    ("UpsampleParameter", "scale", 1), ("UpsampleParameter", "upsample_h", 6), ("UpsampleParameter", "upsample_w", 7),
    ("DropoutParameter", "sample_weights_test", 2),
])
def test_fork_field_numbers(message: str, field: str, number: int) -> None:
    """Fork fields keep the fork's own number wherever it does not clash."""
    assert getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[field].number == number


@pytest.mark.parametrize("text", [
    # SSD (field names as weiliu89's tools write them)
    'type: "Normalize" norm_param { across_spatial: false scale_filler { type: "constant" value: 20 } '
    'channel_shared: false eps: 1e-10 }',
    'type: "PriorBox" prior_box_param { min_size: 30 max_size: 60 aspect_ratio: 2 flip: true clip: false '
    'variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: 8 offset: 0.5 }',
    'type: "DetectionOutput" detection_output_param { num_classes: 21 share_location: true background_label_id: 0 '
    'nms_param { nms_threshold: 0.45 top_k: 400 } save_output_param { label_map_file: "x" output_format: "VOC" '
    'resize_param { prob: 1 resize_mode: WARP height: 300 width: 300 interp_mode: LINEAR } } '
    'code_type: CENTER_SIZE keep_top_k: 200 confidence_threshold: 0.01 }',
    # SegNet/ENet
    'type: "BN" bn_param { bn_mode: INFERENCE scale_filler { type: "constant" value: 1 } '
    'shift_filler { type: "constant" value: 0.001 } }',
    'type: "Upsample" upsample_param { scale: 2 upsample_h: 7 upsample_w: 9 pad_out_h: false pad_out_w: false }',
    'type: "Dropout" dropout_param { dropout_ratio: 0.5 sample_weights_test: false }',
    # PSPNet
    'type: "BN" bn_param { slope_filler { type: "constant" value: 1 } bias_filler { type: "constant" value: 0 } '
    'frozen: true momentum: 0.95 eps: 1e-5 }',
])
def test_fork_prototxt_parses(text: str) -> None:
    text_format.Parse(text, caffe_pb2.LayerParameter())


def test_fork_defaults() -> None:
    """Defaults are each fork's own (PriorBox clip: weiliu89's false; BN bn_mode: LEARN)."""
    assert caffe_pb2.PriorBoxParameter().clip is False
    assert caffe_pb2.BNParameter().bn_mode == caffe_pb2.BNParameter.LEARN
    assert caffe_pb2.BNParameter().eps == pytest.approx(1e-5)
    assert caffe_pb2.NormalizeParameter().eps == pytest.approx(1e-10)
    assert caffe_pb2.UpsampleParameter().scale == 2  # SegNet/ENet; a YOLO "nearest" reading gets 1 from the reader
