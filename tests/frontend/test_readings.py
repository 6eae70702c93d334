"""Fork readings of clashing type names (BN, Upsample), fork aliases, and the caffemodel's
leftovers: decided from evidence, never guessed; contradictions are one-line errors."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.message import DecodeError

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend.caffemodel_writer import encode_varint, field_key, length_delimited, write_caffemodel
from caffe2tf.frontend.reader import load_net
from caffe2tf.errors import Caffe2TFError, PrototxtError, ShapeError

RNG = np.random.default_rng(5)
INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'


def _net(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "net.prototxt"
    path.write_text(INPUT + text)
    return path


def _blobs(n: int, c: int = 3) -> list[np.ndarray]:
    return [RNG.standard_normal((1, c, 1, 1)).astype(np.float32) for _ in range(n)]


def _model(tmp_path: Path, layers: list) -> Path:
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, layers)
    return path


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(Caffe2TFError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert len(msg.splitlines()) == 1, msg
    return msg


# --------------------------------------------------------- the shared cases

@pytest.mark.parametrize("case, readings", [
    ("bn_pspnet", {"conv/bn": "pspnet"}),
    ("bn_enet_inference", {"conv/bn": "segnet"}),
    ("bn_enet_learn_mode", {"bn": "segnet"}),
    ("upsample_nearest", {"up2": "nearest", "up3": "nearest"}),
    ("upsample_mask", {"unpool": "unpool", "unpool_odd": "unpool"}),
])
@pytest.mark.parametrize("with_weights", [False, True])
def test_reference_case_readings(shared_reference: Path, case: str, readings: dict[str, str],
                                 with_weights: bool) -> None:
    d = shared_reference / case
    graph = load_net(d / "net.prototxt", d / "weights.caffemodel" if with_weights else None)
    got = {n.name: n.reading for n in graph.nodes if n.type in ("BN", "Upsample")}
    assert got == readings
    assert all(n.reading is None for n in graph.nodes if n.type not in ("BN", "Upsample"))


def test_enet_mini_readings_and_weights(shared_reference: Path) -> None:
    d = shared_reference / "enet_mini"
    graph = load_net(d / "net.prototxt", d / "weights.caffemodel")
    bns = [n for n in graph.nodes if n.type == "BN"]
    ups = [n for n in graph.nodes if n.type == "Upsample"]
    assert bns and {n.reading for n in bns} == {"segnet"}
    assert all(len(n.weights) == 2 and n.weights[0].shape == (graph.shape(n.inputs[0])[1],) for n in bns)
    assert ups and {n.reading for n in ups} == {"unpool"}


# --------------------------------------------------------------------- BN

BARE_BN = 'layer { name: "bn" type: "BN" bottom: "data" top: "bn" }\n'


@pytest.mark.parametrize("n_blobs, reading", [(4, "pspnet"), (2, "segnet")])
def test_bn_blob_count_decides_a_bare_bn(tmp_path: Path, n_blobs: int, reading: str) -> None:
    graph = load_net(_net(tmp_path, BARE_BN), _model(tmp_path, [("bn", "BN", _blobs(n_blobs))]))
    node = graph.node("bn")
    assert node.reading == reading and [w.shape for w in node.weights] == [(3,)] * n_blobs


def test_bare_bn_without_caffemodel_is_undecided_not_guessed(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        graph = load_net(_net(tmp_path, BARE_BN))
    assert graph.node("bn").reading is None
    assert graph.metadata["undecided_readings"] == {"bn": ("pspnet", "segnet")}
    assert graph.shape("bn") == (1, 3, 8, 8)  # the same for both forks
    assert any("caffemodel decides" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bn_param, n_blobs, fragments", [
    ("bn_param { eps: 1e-5 }", 2, ["contradictory", "eps", "2 blobs"]),
    ("bn_param { bn_mode: INFERENCE }", 4, ["contradictory", "bn_mode", "4 blobs"]),
    ("bn_param { frozen: true scale_filler { value: 1 } }", None, ["contradictory", "frozen", "scale_filler"]),
    ("", 3, ["3 blob(s)", "matches no fork"]),
    ("", 0, ["nor a caffemodel", "holds no blobs"]),
])
def test_bn_missing_or_contradictory_evidence(tmp_path: Path, bn_param: str, n_blobs: int | None,
                                              fragments: list[str]) -> None:
    path = _net(tmp_path, f'layer {{ name: "bn" type: "BN" bottom: "data" top: "bn" {bn_param} }}\n')
    model = None if n_blobs is None else _model(tmp_path, [("other", "ReLU", [])] + (
        [("bn", "BN", _blobs(n_blobs))] if n_blobs else []))
    msg = _error(load_net, path, model)
    assert msg.startswith(f"{path}:2, layer 'bn': BN"), msg
    assert "'pspnet'" in msg and "'segnet'" in msg, msg  # the readings it could have
    for f in fragments:
        assert f in msg, msg


# --------------------------------------------------------------- Upsample

POOL = ('layer { name: "pool" type: "Pooling" bottom: "data" top: "pooled" top: "mask" '
        'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n')


def test_nearest_upsample_gets_the_yolo_default_scale(tmp_path: Path) -> None:
    graph = load_net(_net(tmp_path, 'layer { name: "up" type: "Upsample" bottom: "data" top: "up" }\n'))
    node = graph.node("up")
    assert node.reading == "nearest" and node.param.upsample_param.scale == 1
    assert graph.shape("up") == (1, 3, 8, 8)


@pytest.mark.parametrize("layer, fragments", [
    ('layer { name: "up" type: "Upsample" bottom: "data" top: "up" upsample_param { upsample_h: 16 upsample_w: 16 } }',
     ["contradictory", "1 bottom", "upsample_h", "'nearest'", "'unpool'"]),
    ('layer { name: "up" type: "Upsample" bottom: "pooled" bottom: "pooled" top: "up" }',
     ["MAX Pooling", "'pooled' is top 0 of Pooling layer 'pool'"]),
    ('layer { name: "c" type: "Convolution" bottom: "pooled" top: "c" convolution_param { num_output: 3 kernel_size: 1 } }\n'
     'layer { name: "up" type: "Upsample" bottom: "pooled" bottom: "c" top: "up" }', ["'c' is top 0 of Convolution"]),
    ('layer { name: "up" type: "Upsample" bottom: "pooled" bottom: "mask" bottom: "data" top: "up" }',
     ["3 bottom(s)", "'nearest'", "'unpool'"]),
])
def test_upsample_bad_evidence(tmp_path: Path, layer: str, fragments: list[str]) -> None:
    path = _net(tmp_path, POOL + layer + "\n")
    msg = _error(load_net, path)
    assert f"{path}:" in msg and "layer 'up'" in msg, msg
    for f in fragments:
        assert f in msg, msg


def test_unpool_with_the_mask_of_a_max_pooling(tmp_path: Path) -> None:
    graph = load_net(_net(tmp_path, POOL + 'layer { name: "up" type: "Upsample" bottom: "pooled" bottom: "mask" '
                                           'top: "up" upsample_param { scale: 2 } }\n'))
    assert graph.node("up").reading == "unpool" and graph.shape("up") == (1, 3, 8, 8)


def test_ave_pooling_has_no_mask_top(tmp_path: Path) -> None:
    path = _net(tmp_path, POOL.replace("MAX", "AVE"))
    assert "second top" in _error(load_net, path)


# ------------------------------------------------------ depthwise aliases

@pytest.mark.parametrize("alias, group", [("ConvolutionDepthwise", ""), ("DepthwiseConvolution", "group: 3")])
def test_depthwise_aliases_read_as_convolution(tmp_path: Path, alias: str, group: str) -> None:
    path = _net(tmp_path, f'layer {{ name: "dw" type: "{alias}" bottom: "data" top: "dw" '
                          f'convolution_param {{ num_output: 3 kernel_size: 3 pad: 1 {group} }} }}\n')
    w = [RNG.standard_normal((3, 1, 3, 3)).astype(np.float32), RNG.standard_normal(3).astype(np.float32)]
    graph = load_net(path, _model(tmp_path, [("dw", alias, w)]))
    node = graph.node("dw")
    assert node.type == "Convolution" and node.original_type == alias
    assert node.param.convolution_param.group == 3 and node.param.type == "Convolution"
    np.testing.assert_array_equal(node.weights[0], w[0])


def test_depthwise_alias_with_another_group_is_refused(tmp_path: Path) -> None:
    path = _net(tmp_path, 'layer { name: "dw" type: "DepthwiseConvolution" bottom: "data" top: "dw" '
                          'convolution_param { num_output: 3 kernel_size: 3 group: 1 } }\n')
    msg = _error(load_net, path)
    assert "layer 'dw'" in msg and "group 1" in msg


def test_bayesian_dropout_is_refused(tmp_path: Path) -> None:
    path = _net(tmp_path, 'layer { name: "drop" type: "Dropout" bottom: "data" top: "data" '
                          'dropout_param { sample_weights_test: true } }\n')
    assert "sample_weights_test" in _error(load_net, path)


# ------------------------------------------------------ the caffemodel's extras

def test_leftover_caffemodel_layers_give_one_summary_warning(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """ENet's published caffemodel carries 83 BN layers and 27 Python layers its deploy net
    does not use: one warning line for all of them."""
    path = _net(tmp_path, 'layer { name: "bn" type: "BN" bottom: "data" top: "bn" '
                          'bn_param { bn_mode: INFERENCE } }\n')
    layers = [("bn", "BN", _blobs(2))]
    layers += [(f"train_bn{i}", "BN", _blobs(2)) for i in range(83)]
    layers += [(f"py{i}", "Python", []) for i in range(27)]
    with caplog.at_level(logging.WARNING, logger="caffe2tf"):
        graph = load_net(path, _model(tmp_path, layers))
    assert graph.node("bn").reading == "segnet"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "110 layer(s)" in warnings[0] and "83 BN, 27 Python" in warnings[0]


def test_fork_parameter_under_a_clashing_number_never_breaks_loading(tmp_path: Path) -> None:
    """A fork's layer parameter stored at a number our schema gives another message
    (143: PSPNet's interp_param, BVLC's input_param). Crafted so that our schema
    cannot parse it: the stubs reject the whole file, the weights-only reader (name,
    type, blobs) loads it, and the parameters come from the prototxt."""
    path = _net(tmp_path, 'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
                          'convolution_param { num_output: 2 kernel_size: 1 } }\n'
                          'layer { name: "up" type: "Interp" bottom: "conv" top: "up" interp_param { zoom_factor: 2 } }\n')
    # field 143 -> field 1 length-delimited: for our InputParameter that is a BlobShape, and
    # these bytes are no valid BlobShape (a truncated varint)
    clash = length_delimited(143, length_delimited(1, b"\xff\xff"))
    # and ENet's upsample_param (147, scale: 2 as a varint) where BVLC has swish_param (a float)
    enet = length_delimited(147, field_key(1, 0) + encode_varint(2))
    w = [RNG.standard_normal((2, 3, 1, 1)).astype(np.float32), RNG.standard_normal(2).astype(np.float32)]
    model = tmp_path / "w.caffemodel"
    write_caffemodel(model, [("conv", "Convolution", w, enet), ("up", "Interp", [], clash)])
    with pytest.raises(DecodeError):
        caffe_pb2.NetParameter.FromString(model.read_bytes())
    graph = load_net(path, model)
    assert graph.shape("up") == (1, 2, 15, 15)
    np.testing.assert_array_equal(graph.node("conv").weights[0], w[0])


def test_shape_rule_error_names_the_layer(tmp_path: Path) -> None:
    path = _net(tmp_path, 'layer { name: "pb" type: "PriorBox" bottom: "data" bottom: "data" top: "pb" '
                          'prior_box_param { max_size: 10 } }\n')
    with pytest.raises(ShapeError) as info:
        load_net(path)
    assert "layer 'pb'" in str(info.value) and "min_size" in str(info.value)


def test_contradiction_is_a_prototxt_error(tmp_path: Path) -> None:
    path = _net(tmp_path, 'layer { name: "bn" type: "BN" bottom: "data" top: "bn" bn_param { eps: 1 bn_mode: LEARN } }\n')
    with pytest.raises(PrototxtError):
        load_net(path)


@pytest.mark.parametrize("case, layer, shape", [
    ("prelu_shared", "prelu", (1,)),                 # stored as a 0-d blob `[]`
    ("normalize_across_spatial", "norm", (1,)),      # channel_shared: `[]`
    ("normalize_channelwise", "conv4_3_norm", None),  # (C,)
    ("bn_enet_inference", "conv/bn", None),          # stored 1xCx1x1 -> (C,)
])
def test_stored_blob_shapes_become_canonical(shared_reference: Path, case: str, layer: str,
                                             shape: tuple[int, ...] | None) -> None:
    d = shared_reference / case
    graph = load_net(d / "net.prototxt", d / "weights.caffemodel")
    node = graph.node(layer)
    assert node.weights
    c = graph.shape(node.inputs[0])[1]
    assert all(w.shape == (shape or (c,)) for w in node.weights), [w.shape for w in node.weights]
