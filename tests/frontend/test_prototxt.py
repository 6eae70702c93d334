"""Parsing network definitions: errors that name file:line:column and layer, fork spellings."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend import prototxt as prototxt_mod
from caffe2tf.frontend.prototxt import parse_prototxt, parse_prototxt_text, scan_layer_blocks
from caffe2tf.frontend.reader import load_net
from caffe2tf.errors import Caffe2TFError, PrototxtError

INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'


def _write(tmp_path: Path, text: str, name: str = "net.prototxt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _one_line(exc: Caffe2TFError) -> str:
    msg = str(exc)
    assert len(msg.splitlines()) == 1 and msg.strip() == msg
    return msg


def test_valid_net_and_layer_lines(tmp_path: Path) -> None:
    text = ('name: "n"\n' + INPUT +
            '# a comment with a brace {\n'
            'layer {\n  name: "re{lu}"\n  type: "ReLU"\n  bottom: "data"\n  top: "data"\n}\n'
            "layer { name: 'pool' type: \"Pooling\" bottom: \"data\" top: \"pool\"\n"
            "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n")
    parsed = parse_prototxt(_write(tmp_path, text))
    assert parsed.net.name == "n" and len(parsed.net.layer) == 3
    assert [(b.line, b.end_line, b.name) for b in parsed.blocks] == [(2, 2, "data"), (4, 9, "re{lu}"), (10, 11, "pool")]
    graph = load_net(tmp_path / "net.prototxt")
    assert [n.line for n in graph.nodes] == [2, 4, 10]


def test_syntax_error_is_one_line_with_file_line_column(tmp_path: Path) -> None:
    path = _write(tmp_path, INPUT + 'layer {\n  name: "relu"\n  type: "ReLU"\n  bottom: "data" top "data"\n}\n')
    with pytest.raises(PrototxtError) as info:
        parse_prototxt(path)
    msg = _one_line(info.value)
    assert msg.startswith(f"{path}:5:")
    assert info.value.line == 5 and info.value.column is not None
    assert "syntax error" in msg and "layer 'relu'" in msg


def test_unterminated_block_names_the_last_line(tmp_path: Path) -> None:
    path = _write(tmp_path, INPUT + 'layer { name: "relu" type: "ReLU"\n')
    with pytest.raises(PrototxtError) as info:
        parse_prototxt(path)
    assert _one_line(info.value).startswith(f"{path}:2:")


def test_unknown_field_names_field_and_layer(tmp_path: Path) -> None:
    path = _write(tmp_path, INPUT + 'layer {\n  name: "conv"\n  type: "Convolution"\n'
                                    '  convolution_param { num_output: 2 kernel_size: 3 fancy_mode: 7 }\n}\n')
    with pytest.raises(PrototxtError) as info:
        parse_prototxt(path)
    msg = _one_line(info.value)
    assert msg.startswith(f"{path}:5:")
    assert "'fancy_mode'" in msg and "layer 'conv'" in msg and info.value.layer == "conv"
    assert "--ignore-unknown-fields" in msg


def test_allow_unknown_fields_skips_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, INPUT + 'layer {\n  name: "conv"\n  type: "Convolution"\n  bottom: "data" top: "conv"\n'
                                    '  convolution_param { num_output: 2 kernel_size: 3 fancy_mode: 7 }\n}\n')
    with caplog.at_level(logging.WARNING, logger="caffe2tf"):
        parsed = parse_prototxt(path, allow_unknown_fields=True)
    conv = parsed.net.layer[1]
    assert conv.convolution_param.num_output == 2 and list(conv.convolution_param.kernel_size) == [3]
    assert any("fancy_mode" in r.getMessage() and "conv" in r.getMessage() for r in caplog.records)
    graph = load_net(path, allow_unknown_fields=True)
    assert graph.shape("conv") == (1, 2, 6, 6)


def test_unknown_enum_value_is_never_skipped(tmp_path: Path) -> None:
    """Skipping `pool: MEDIAN` would silently pool with MAX: an error, even with the flag."""
    path = _write(tmp_path, INPUT + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
                                    '  pooling_param { pool: MEDIAN kernel_size: 2 } }\n')
    for allow in (False, True):
        with pytest.raises(PrototxtError) as info:
            parse_prototxt(path, allow_unknown_fields=allow)
        msg = _one_line(info.value)
        assert msg.startswith(f"{path}:3:") and "'MEDIAN'" in msg and "layer 'p'" in msg
        assert "--ignore-unknown-fields" not in msg


@pytest.mark.parametrize("spelling", ["round_mode: FLOOR", "ceil_mode: false"])
def test_both_floor_pooling_spellings(tmp_path: Path, spelling: str) -> None:
    path = _write(tmp_path, INPUT + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
                                    f'  pooling_param {{ pool: MAX kernel_size: 3 stride: 2 {spelling} }} }}\n')
    parsed = parse_prototxt(path)
    p = parsed.net.layer[1].pooling_param
    assert p.round_mode == caffe_pb2.PoolingParameter.FLOOR or not p.ceil_mode
    assert load_net(path).shape("p") == (1, 3, 3, 3)  # ceil would give 4x4


def test_ceil_pooling_default(tmp_path: Path) -> None:
    for spelling in ("", "round_mode: CEIL", "ceil_mode: true"):
        path = _write(tmp_path, INPUT + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
                                        f'  pooling_param {{ pool: MAX kernel_size: 3 stride: 2 {spelling} }} }}\n')
        assert load_net(path).shape("p") == (1, 3, 4, 4), spelling


def test_missing_file_and_binary_file(tmp_path: Path) -> None:
    with pytest.raises(PrototxtError) as info:
        parse_prototxt(tmp_path / "nope.prototxt")
    assert str(tmp_path / "nope.prototxt") in _one_line(info.value)
    binary = tmp_path / "weights.caffemodel"
    binary.write_bytes(b"\n\x04name\x00\xff\xfe\x80")
    with pytest.raises(PrototxtError) as info:
        parse_prototxt(binary)
    msg = _one_line(info.value)
    assert msg.startswith(f"{binary}:2") and "caffemodel" in msg


def test_oversized_file_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prototxt_mod, "MAX_PROTOTXT_BYTES", 100)
    path = _write(tmp_path, INPUT * 2)
    with pytest.raises(PrototxtError) as info:
        parse_prototxt(path)
    assert str(path) in _one_line(info.value) and "bytes" in str(info.value)


def test_v1_layers_blocks_are_found() -> None:
    text = 'input: "data"\nlayers {\n name: "c" type: CONVOLUTION\n}\nlayers { name: "r" type: RELU }\n'
    blocks = scan_layer_blocks(text)
    assert [(b.line, b.name, b.v1) for b in blocks] == [(2, "c", True), (5, "r", True)]
    parsed = parse_prototxt_text(text, "v1.prototxt")
    assert len(parsed.net.layers) == 2 and len(parsed.blocks) == 2


def test_layer_written_with_colon_still_parses() -> None:
    """`layer: { ... }` is valid text format; the scanner cannot place it, so lines are dropped, not wrong."""
    parsed = parse_prototxt_text('layer: { name: "a" type: "ReLU" }\n', "x.prototxt")
    assert parsed.net.layer[0].name == "a"
    assert parsed.blocks == [] or [b.name for b in parsed.blocks] == ["a"]
