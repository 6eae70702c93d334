"""load_net: Caffe's net semantics (phases, inputs, SSA, V1) and matching weights to layers."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest

from caffe2tf.frontend.caffemodel_writer import write_caffemodel
from caffe2tf.frontend.weights import read_caffemodel
from caffe2tf.frontend.reader import load_net
from caffe2tf.errors import Caffe2TFError, PrototxtError, WeightsError

INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'
CONV = ('layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"\n'
        '  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }\n')


def _net(tmp_path: Path, text: str, name: str = "net.prototxt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _one_line(exc: Caffe2TFError) -> str:
    msg = str(exc)
    assert len(msg.splitlines()) == 1, msg
    return msg


# ------------------------------------------------------------------ phases

PHASED = INPUT + """
layer { name: "train_drop" type: "Dropout" bottom: "data" top: "data" include { phase: TRAIN } }
layer { name: "test_relu" type: "ReLU" bottom: "data" top: "data" include { phase: TEST } }
layer { name: "not_test" type: "TanH" bottom: "data" top: "data" exclude { phase: TEST } }
layer { name: "staged" type: "Sigmoid" bottom: "data" top: "data" include { stage: "deploy" } }
layer { name: "not_deploy" type: "AbsVal" bottom: "data" top: "data" include { phase: TEST not_stage: "deploy" } }
layer { name: "two_stages" type: "BNLL" bottom: "data" top: "data" include { stage: "deploy" stage: "hq" } }
layer { name: "level2" type: "Exp" bottom: "data" top: "data" include { min_level: 2 } }
layer { name: "upto1" type: "Power" bottom: "data" top: "data" include { max_level: 1 } }
layer { name: "either" type: "ELU" bottom: "data" top: "data" include { phase: TRAIN } include { stage: "hq" } }
layer { name: "always" type: "ReLU" bottom: "data" top: "out" }
"""


@pytest.mark.parametrize("kwargs, expected", [
    ({}, ["test_relu", "not_deploy", "upto1"]),
    ({"stages": ["deploy"]}, ["test_relu", "staged", "upto1"]),
    ({"stages": ["deploy", "hq"]}, ["test_relu", "staged", "two_stages", "upto1", "either"]),
    ({"level": 2}, ["test_relu", "not_deploy", "level2"]),
    ({"phase": "TRAIN"}, ["train_drop", "not_test", "upto1", "either"]),
])
def test_phase_stage_level_rules(tmp_path: Path, kwargs: dict, expected: list[str]) -> None:
    graph = load_net(_net(tmp_path, PHASED), **kwargs)
    assert [n.name for n in graph.nodes] == ["data", *expected, "always"]


def test_phase_rules_case(shared_reference: Path) -> None:
    graph = load_net(shared_reference / "phase_rules" / "net.prototxt")
    assert [n.name for n in graph.nodes] == ["data", "conv", "test_relu"]


# ------------------------------------------------------------------ inputs

def test_legacy_input_dim(tmp_path: Path) -> None:
    graph = load_net(_net(tmp_path, 'input: "a"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 4\ninput_dim: 5\n'
                                    'input: "b"\ninput_dim: 2\ninput_dim: 1\ninput_dim: 1\ninput_dim: 1\n'
                                    'layer { name: "r" type: "ReLU" bottom: "a" top: "r" }\n'))
    assert graph.inputs == ("a", "b")
    assert graph.shape("a") == (1, 3, 4, 5) and graph.shape("b") == (2, 1, 1, 1)
    assert graph.node("a").type == "Input" and graph.outputs == ("r",)


def test_legacy_input_shape(tmp_path: Path) -> None:
    graph = load_net(_net(tmp_path, 'input: "a"\ninput_shape { dim: 2 dim: 7 }\n'
                                    'input: "b"\ninput_shape { dim: 1 dim: 2 dim: 3 }\n'
                                    'layer { name: "ra" type: "ReLU" bottom: "a" top: "ra" }\n'
                                    'layer { name: "rb" type: "ReLU" bottom: "b" top: "rb" }\n'))
    assert graph.shape("a") == (2, 7) and graph.shape("b") == (1, 2, 3)


@pytest.mark.parametrize("text, fragment", [
    ('input: "a"\ninput_dim: 1\ninput_dim: 3\n', "need 4 input_dim values, got 2"),
    ('input: "a"\ninput: "b"\ninput_shape { dim: 1 }\n', "2 inputs but 1 input_shape"),
    ('input_dim: 1\ninput_dim: 1\ninput_dim: 1\ninput_dim: 1\n', "without an `input` name"),
    ('input: "a"\n', "need 4 input_dim values, got 0"),
])
def test_legacy_input_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = _net(tmp_path, text)
    with pytest.raises(PrototxtError) as info:
        load_net(path)
    assert _one_line(info.value).startswith(str(path)) and fragment in str(info.value)


# a net computes something from its inputs (one made of inputs alone is refused)
USE_AB = ('layer { name: "ra" type: "ReLU" bottom: "a" top: "ra" }\n'
          'layer { name: "rb" type: "ReLU" bottom: "b" top: "rb" }\n')


def test_input_layer_with_several_tops_and_override(tmp_path: Path) -> None:
    text = ('layer { name: "in" type: "Input" top: "a" top: "b"\n'
            '  input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } shape { dim: 1 dim: 5 } } }\n' + USE_AB)
    graph = load_net(_net(tmp_path, text))
    assert graph.inputs == ("a", "b") and graph.shape("a") == (1, 2, 3, 3) and graph.shape("b") == (1, 5)
    graph = load_net(tmp_path / "net.prototxt", input_shapes={"a": (2, 2, 9, 9)})
    assert graph.shape("a") == (2, 2, 9, 9) and graph.shape("b") == (1, 5)


def test_input_layer_one_shape_for_all_tops(tmp_path: Path) -> None:
    text = 'layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 1 dim: 2 } } }\n' + USE_AB
    graph = load_net(_net(tmp_path, text))
    assert graph.shape("a") == graph.shape("b") == (1, 2)


def test_unused_input_shape_override_is_an_error(tmp_path: Path) -> None:
    path = _net(tmp_path, INPUT)
    with pytest.raises(PrototxtError) as info:
        load_net(path, input_shapes={"image": (1, 3, 8, 8)})
    assert "'image'" in _one_line(info.value) and "data" in str(info.value)


DATA_NET = """
layer { name: "src" type: "Data" top: "img" top: "label" include { phase: TEST }
  data_param { source: "x_lmdb" batch_size: 4 } }
layer { name: "src_train" type: "Data" top: "img" top: "label" include { phase: TRAIN } }
layer { name: "conv" type: "Convolution" bottom: "img" top: "conv" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "acc" type: "Accuracy" bottom: "conv" bottom: "label" top: "acc" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv" bottom: "label" top: "loss" }
"""


def test_data_layer_needs_an_input_shape(tmp_path: Path) -> None:
    path = _net(tmp_path, DATA_NET)
    with pytest.raises(PrototxtError) as info:
        load_net(path)
    msg = _one_line(info.value)
    assert msg.startswith(f"{path}:2") and "layer 'src'" in msg and "--input-shape img=" in msg


def test_data_layer_becomes_an_input(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="caffe2tf"):
        graph = load_net(_net(tmp_path, DATA_NET), input_shapes={"img": (4, 3, 5, 5)})
    assert [(n.name, n.type) for n in graph.nodes] == [("src", "Input"), ("conv", "Convolution")]
    assert graph.inputs == ("img",) and graph.shape("conv") == (4, 2, 5, 5) and graph.outputs == ("conv",)
    text = caplog.text
    assert "label" in text and "acc" in text and "loss" in text


def test_label_used_by_a_kept_layer_is_an_error(tmp_path: Path) -> None:
    text = DATA_NET + 'layer { name: "use" type: "Eltwise" bottom: "conv" bottom: "label" top: "bad" }\n'
    with pytest.raises(PrototxtError) as info:
        load_net(_net(tmp_path, text), input_shapes={"img": (4, 3, 5, 5)})
    assert "layer 'use'" in _one_line(info.value) and "label" in str(info.value)


@pytest.mark.parametrize("layer, shape", [
    ('type: "MemoryData" top: "d" top: "l" memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 }',
     (2, 3, 4, 5)),
    ('type: "DummyData" top: "d" dummy_data_param { shape { dim: 1 dim: 6 } }', (1, 6)),
    ('type: "DummyData" top: "d" dummy_data_param { num: 1 channels: 2 height: 3 width: 4 }', (1, 2, 3, 4)),
])
def test_data_layers_with_known_shapes(tmp_path: Path, layer: str, shape: tuple[int, ...]) -> None:
    graph = load_net(_net(tmp_path, f'layer {{ name: "src" {layer} }}\n'
                                    'layer { name: "r" type: "ReLU" bottom: "d" top: "r" }\n'))
    assert graph.inputs == ("d",) and graph.shape("d") == shape


# ------------------------------------------------------------------ SSA

def test_in_place_layers_become_ssa_values(shared_reference: Path) -> None:
    graph = load_net(shared_reference / "in_place_chain" / "net.prototxt")
    conv1, relu1, drop, conv2, res, relu2 = (graph.node(n) for n in ("conv1", "relu1", "drop", "conv2", "res", "relu2"))
    assert conv1.outputs == ("conv1",)
    assert relu1.inputs == ("conv1",) and relu1.outputs == ("conv1@relu1",)
    assert drop.inputs == ("conv1@relu1",) and drop.outputs == ("conv1@drop",)
    assert conv2.inputs == ("conv1@drop",) and res.inputs == ("conv1@drop", "conv2")
    assert relu2.outputs == ("res@relu2",) and graph.outputs == ("res@relu2",)
    assert {graph.values[v].blob for v in ("conv1", "conv1@relu1", "conv1@drop")} == {"conv1"}
    producers = [v for n in graph.nodes for v in n.outputs]
    assert len(producers) == len(set(producers)) == len(graph.values)
    assert graph.producer("conv1@drop") is drop and graph.consumers("conv1@drop") == [conv2, res]


def test_rewritten_blob_name_is_a_new_value(tmp_path: Path) -> None:
    """A later layer writing a top name already used (not in place) also gets a fresh value."""
    text = INPUT + ('layer { name: "a" type: "ReLU" bottom: "data" top: "x" }\n'
                    'layer { name: "b" type: "TanH" bottom: "data" top: "x" }\n'
                    'layer { name: "c" type: "Sigmoid" bottom: "x" top: "y" }\n')
    graph = load_net(_net(tmp_path, text))
    assert graph.node("b").outputs == ("x@b",) and graph.node("c").inputs == ("x@b",)
    assert graph.values["x@b"].blob == "x"


def test_duplicate_layer_name(tmp_path: Path) -> None:
    path = _net(tmp_path, INPUT + 'layer { name: "data" type: "ReLU" bottom: "data" top: "r" }\n')
    with pytest.raises(PrototxtError) as info:
        load_net(path)
    assert _one_line(info.value).startswith(f"{path}:2, layer 'data'")


# ------------------------------------------------------------------ V1

def test_v1_net_is_upgraded(shared_reference: Path, case_caffemodel: Callable[[str], Path]) -> None:
    graph = load_net(shared_reference / "v1_format" / "net.prototxt", case_caffemodel("v1_format"))
    assert [n.type for n in graph.nodes] == ["Input", "Convolution", "ReLU", "LRN", "Pooling", "InnerProduct",
                                             "Softmax"]
    conv = graph.node("conv1")
    assert conv.param.convolution_param.group == 2 and conv.param.convolution_param.num_output == 8
    assert graph.node("pool1").param.pooling_param.kernel_size == 3
    assert graph.node("norm1").param.lrn_param.local_size == 3
    assert [w.shape for w in conv.weights] == [(8, 2, 3, 3), (8,)]
    assert [w.shape for w in graph.node("fc").weights] == [(5, 8 * 3 * 3), (5,)]
    assert graph.node("relu1").line == 10


def test_v1_phase_rules_are_kept(tmp_path: Path) -> None:
    text = ('input: "data"\ninput_dim: 1\ninput_dim: 1\ninput_dim: 2\ninput_dim: 2\n'
            'layers { name: "d" type: DROPOUT bottom: "data" top: "data" include { phase: TRAIN } }\n'
            'layers { name: "r" type: RELU bottom: "data" top: "data" }\n')
    assert [n.name for n in load_net(_net(tmp_path, text)).nodes] == ["data", "r"]


def test_mixing_v1_and_v2_layers(tmp_path: Path) -> None:
    path = _net(tmp_path, INPUT + 'layers { name: "r" type: RELU bottom: "data" top: "data" }\n')
    with pytest.raises(PrototxtError) as info:
        load_net(path)
    assert "V1" in _one_line(info.value)


# ------------------------------------------------------------------ weights

BN_NET = INPUT + CONV + """layer { name: "bn" type: "BN" bottom: "conv" top: "conv" bn_param { eps: 1e-5 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 5 } }
"""
RNG = np.random.default_rng(3)


def _bn_weights(**override: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    w = {
        "conv": [RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), RNG.standard_normal(4).astype(np.float32)],
        "bn": [RNG.standard_normal((1, 4, 1, 1)).astype(np.float32) for _ in range(4)],
        "fc": [RNG.standard_normal((5, 256)).astype(np.float32), RNG.standard_normal(5).astype(np.float32)],
    }
    w.update(override)
    return w


def _model(tmp_path: Path, weights: dict[str, list[np.ndarray]], types: dict[str, str] | None = None,
           **kwargs: bool) -> Path:
    types = {"conv": "Convolution", "bn": "BN", "fc": "InnerProduct", **(types or {})}
    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, [(n, types.get(n, "X"), b) for n, b in weights.items()], **kwargs)
    return path


def test_weights_are_matched_by_name_and_canonicalised(tmp_path: Path) -> None:
    w = _bn_weights()
    order = {k: w[k] for k in ("fc", "bn", "conv")}  # file order differs from net order
    graph = load_net(_net(tmp_path, BN_NET), _model(tmp_path, order))
    conv, bn, fc = graph.node("conv"), graph.node("bn"), graph.node("fc")
    np.testing.assert_array_equal(conv.weights[0], w["conv"][0])
    assert [b.shape for b in bn.weights] == [(4,)] * 4  # PSPNet BN blobs 1xCx1x1 -> (C,)
    for got, stored in zip(bn.weights, w["bn"]):
        np.testing.assert_array_equal(got, stored.ravel())
    assert [b.shape for b in fc.weights] == [(5, 256), (5,)]
    assert graph.node("data").weights == () and graph.node("data").param.blobs == []


def test_legacy_4d_blob_shapes_are_canonicalised(tmp_path: Path) -> None:
    """Old caffemodels store every blob as num/channels/height/width: IP weights 1x1xNxK, biases 1x1x1xN."""
    graph = load_net(_net(tmp_path, BN_NET), _model(tmp_path, _bn_weights(), legacy_shape=True))
    assert [b.shape for b in graph.node("fc").weights] == [(5, 256), (5,)]
    assert [b.shape for b in graph.node("conv").weights] == [(4, 3, 3, 3), (4,)]


def test_v1_caffemodel_for_a_v2_prototxt(tmp_path: Path) -> None:
    w = _bn_weights()
    del w["bn"]
    text = INPUT + CONV + 'layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" ' \
                          'inner_product_param { num_output: 5 } }\n'
    graph = load_net(_net(tmp_path, text), _model(tmp_path, w, v1=True, packed=False, double=True))
    np.testing.assert_array_equal(graph.node("fc").weights[0], w["fc"][0])


def test_missing_weights_list_the_layers(tmp_path: Path) -> None:
    w = _bn_weights()
    del w["conv"], w["fc"]
    model = _model(tmp_path, w)
    with pytest.raises(WeightsError) as info:
        load_net(_net(tmp_path, BN_NET), model)
    msg = _one_line(info.value)
    assert msg.startswith(str(model)) and "2 layer(s): conv, fc" in msg
    graph = load_net(tmp_path / "net.prototxt", model, allow_missing_weights=True)
    assert graph.node("conv").weights == () and len(graph.node("bn").weights) == 4


def test_extra_weights_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    w = _bn_weights(old_fc8=[np.ones((3, 3), np.float32)])
    with caplog.at_level(logging.WARNING, logger="caffe2tf"):
        load_net(_net(tmp_path, BN_NET), _model(tmp_path, w))
    assert "old_fc8" in caplog.text


@pytest.mark.parametrize("override, fragment", [
    ({"conv": [np.ones((4, 3, 5, 5), np.float32), np.ones(4, np.float32)]},
     "(4, 3, 5, 5), the layer needs (4, 3, 3, 3)"),
    ({"fc": [np.ones((5, 255), np.float32), np.ones(5, np.float32)]}, "(5, 255), the layer needs (5, 256)"),
    ({"bn": [np.ones((1, 4, 1, 1), np.float32)] * 3 + [np.ones((4, 1, 1, 2), np.float32)]}, "(4, 1, 1, 2)"),
    ({"conv": [np.ones((4, 3, 3, 3), np.float32)]}, "needs 2 blob(s), the caffemodel holds 1"),
])
def test_shape_mismatch_names_layer_expected_and_found(tmp_path: Path, override: dict, fragment: str) -> None:
    layer = next(iter(override))
    model = _model(tmp_path, _bn_weights(**override))
    with pytest.raises(WeightsError) as info:
        load_net(_net(tmp_path, BN_NET), model)
    msg = _one_line(info.value)
    assert msg.startswith(f"{model}, layer '{layer}'") and fragment in msg


def test_middle_ones_are_not_dropped(tmp_path: Path) -> None:
    """(4, 3, 3, 3) stored as (4, 1, 3, 3, 3) differs inside, not at the ends: an error, not a reshape."""
    model = _model(tmp_path, _bn_weights(conv=[np.ones((4, 1, 3, 3, 3), np.float32), np.ones(4, np.float32)]))
    with pytest.raises(WeightsError, match=r"\(4, 1, 3, 3, 3\), the layer needs \(4, 3, 3, 3\)"):
        load_net(_net(tmp_path, BN_NET), model)


def test_weights_for_a_layer_without_parameters(tmp_path: Path) -> None:
    text = INPUT + 'layer { name: "relu" type: "ReLU" bottom: "data" top: "r" }\n'
    write_caffemodel(tmp_path / "w.caffemodel", [("relu", "ReLU", [np.ones(3, np.float32)])])
    with pytest.raises(WeightsError) as info:
        load_net(_net(tmp_path, text), tmp_path / "w.caffemodel")
    assert "layer 'relu'" in _one_line(info.value) and "takes none" in str(info.value)


def test_unknown_layer_type_keeps_its_stored_blobs(tmp_path: Path) -> None:
    text = INPUT + 'layer { name: "odd" type: "FancyOp" bottom: "data" top: "f" }\n' \
                   'layer { name: "relu" type: "ReLU" bottom: "f" top: "r" }\n'
    blob = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_caffemodel(tmp_path / "w.caffemodel", [("odd", "FancyOp", [blob])])
    graph = load_net(_net(tmp_path, text), tmp_path / "w.caffemodel")
    assert graph.metadata["unknown_types"] == {"FancyOp": ["odd"]}
    assert graph.shape("f") is None and graph.shape("r") is None
    np.testing.assert_array_equal(graph.node("odd").weights[0], blob)


def test_every_reference_case_loads_with_its_weights(reference_case: Path,
                                                     case_caffemodel: Callable[[Path], Path]) -> None:
    """Each case's caffemodel (rebuilt from its recipe where not shipped) fits its net exactly."""
    graph = load_net(reference_case / "net.prototxt", case_caffemodel(reference_case))
    recipe_file = reference_case / "weights.recipe.json"
    if recipe_file.is_file():
        recipe = json.loads(recipe_file.read_text())
        weighted = {l["name"]: l["blobs"] for l in recipe["layers"] if l.get("blobs")}
    else:  # real trained weights (res10_ssd_face): what the caffemodel stores for the net's layers
        names = {n.name for n in graph.nodes}
        weighted = {lw.name: [{"shape": list(b.shape)} for b in lw.blobs]
                    for lw in read_caffemodel(reference_case / "weights.caffemodel") if lw.blobs and lw.name in names}
    for node in graph.nodes:
        if node.name in weighted:
            assert len(node.weights) == len(weighted[node.name]), node.name
            for w, spec in zip(node.weights, weighted[node.name]):
                assert w.dtype == np.float32 and w.size == int(np.prod(spec["shape"])), node.name
        else:
            assert node.weights == (), node.name
    with h5py.File(reference_case / "reference.h5", "r") as f:
        assert [f["inputs"][k].attrs["blob"] for k in sorted(f["inputs"], key=int)] == \
               [graph.values[v].blob for v in graph.inputs]
        for k in f["inputs"]:
            blob = f["inputs"][k].attrs["blob"]
            assert graph.shape(blob) == f["inputs"][k].shape


def test_fork_parameter_bytes_in_the_caffemodel_do_not_matter(tmp_path: Path) -> None:
    """PSPNet's caffemodels store interp_param at 143 (BVLC's input_param): the net still loads,
    its parameters coming from the prototxt."""
    from caffe2tf.frontend.caffemodel_writer import encode_varint, field_key, length_delimited

    text = INPUT + CONV + 'layer { name: "interp" type: "Interp" bottom: "conv" top: "up" ' \
                          'interp_param { zoom_factor: 2 } }\n'
    interp_143 = length_delimited(143, field_key(3, 0) + encode_varint(2))  # zoom_factor: 2, fork numbering
    w = _bn_weights()
    write_caffemodel(tmp_path / "w.caffemodel", [("conv", "Convolution", w["conv"], field_key(147, 0) + b"\x01"),
                                                 ("interp", "Interp", [], interp_143)])
    graph = load_net(_net(tmp_path, text), tmp_path / "w.caffemodel")
    assert graph.shape("up") == (1, 4, 15, 15)
    np.testing.assert_array_equal(graph.node("conv").weights[0], w["conv"][0])


@pytest.mark.parametrize("case", ["v1_format", "bn_pspnet"])
def test_recipes_rebuild_the_shipped_caffemodels(shared_reference: Path, tmp_path: Path, case: str) -> None:
    """The recipe route (used for cases too large to ship) gives the very bytes Caffe ran with."""
    import subprocess
    import sys

    out = tmp_path / "w.caffemodel"
    subprocess.run([sys.executable, str(shared_reference.parent / "tools" / "synth_caffemodel.py"),
                    str(shared_reference / case / "weights.recipe.json"), str(out)], check=True, timeout=120)
    assert out.read_bytes() == (shared_reference / case / "weights.caffemodel").read_bytes()
