"""Shape inference in Caffe's semantics: every recorded output of real Caffe, and one rule at a time."""
from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import pytest
from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend import shapes
from caffe2tf.frontend.reader import load_net
from caffe2tf.errors import Caffe2TFError, ShapeError


# ------------------------------------------------- against real Caffe

def _recorded_shape(obj: h5py.Dataset | h5py.Group) -> tuple[int, ...]:
    if isinstance(obj, h5py.Dataset):
        return tuple(obj.shape)
    return tuple(int(d) for d in obj.attrs["shape"])


def _same_blob(ours: str, recorded: str) -> bool:
    """Caffe feeds a blob read by several layers through its own Split layer, whose tops are
    named ``<blob>_<producer layer>_<top index>_split_<k>``."""
    return recorded == ours or re.fullmatch(re.escape(ours) + r"_.+_\d+_split_\d+", recorded) is not None


# Types whose output has a data-dependent dimension (written None in the IR).
DATA_DEPENDENT = {"DetectionOutput": 2}


def shapes_match(ours: tuple | None, recorded: tuple[int, ...], layer_type: str) -> bool:
    """Equal, except that the one data-dependent axis of a type in DATA_DEPENDENT (and only
    that axis) is None in ours, whatever number of rows Caffe happened to produce."""
    if ours is None or len(ours) != len(recorded):
        return False
    free = DATA_DEPENDENT.get(layer_type)
    return all(o == r or (o is None and i == free) for i, (o, r) in enumerate(zip(ours, recorded)))


def test_every_recorded_output_shape(reference_case: Path) -> None:
    """Every top of every layer Caffe ran (reference.h5) has the shape our graph infers."""
    graph = load_net(reference_case / "net.prototxt")
    checked = 0
    with h5py.File(reference_case / "reference.h5", "r") as f:
        groups = [f["layers"][k] for k in sorted(f["layers"])]
        assert len(groups) == int(f.attrs["num_layers"])
        recorded = [g.attrs["name"] for g in groups]
        ours = [n.name for n in graph.nodes if n.type not in ("Input", "Split") or n.name in recorded]
        assert ours == recorded, "layers kept after phase filtering differ from the ones Caffe ran"
        for group in groups:
            node = graph.node(group.attrs["name"])
            tops = json.loads(group.attrs["tops"])
            assert node.type == group.attrs["type"]
            assert [graph.values[v].blob for v in node.outputs] == tops
            bottoms = json.loads(group.attrs["bottoms"])
            assert len(bottoms) == len(node.inputs)
            for v, recorded_bottom in zip(node.inputs, bottoms):
                assert _same_blob(graph.values[v].blob, recorded_bottom), (node.name, v, recorded_bottom)
            for t, value_id in enumerate(node.outputs):
                expected = _recorded_shape(group[f"top{t}"])
                assert shapes_match(graph.shape(value_id), expected, node.type), f"{node.name} top{t} ({tops[t]})"
                checked += 1
        for k in f["inputs"]:
            assert graph.shape(f["inputs"][k].attrs["blob"]) == f["inputs"][k].shape
    assert checked > 0


# ------------------------------------------------- one rule at a time

def _infer(layer: str, *in_shapes: tuple[int, ...], tops: int = 1) -> shapes.ShapeResult:
    param = text_format.Parse(layer, caffe_pb2.LayerParameter())
    if not param.top:
        param.top.extend(f"t{i}" for i in range(tops))
    return shapes.infer(param, list(in_shapes))


def _out(layer: str, *in_shapes: tuple[int, ...], tops: int = 1) -> tuple[int, ...] | list[tuple[int, ...]]:
    outs = _infer(layer, *in_shapes, tops=tops).outputs
    return outs[0] if tops == 1 else outs


def _error(layer: str, *in_shapes: tuple[int, ...], tops: int = 1) -> str:
    with pytest.raises(ShapeError) as info:
        _infer(layer, *in_shapes, tops=tops)
    return str(info.value)


CONV = 'type: "Convolution" convolution_param {{ {} }}'
DECONV = 'type: "Deconvolution" convolution_param {{ {} }}'


@pytest.mark.parametrize("params, x, out, weight", [
    ("num_output: 4 kernel_size: 3 pad: 1", (1, 3, 8, 8), (1, 4, 8, 8), (4, 3, 3, 3)),
    ("num_output: 4 kernel_size: 3 stride: 2", (1, 3, 8, 8), (1, 4, 3, 3), (4, 3, 3, 3)),
    ("num_output: 2 kernel_size: 3 dilation: 2", (1, 3, 9, 9), (1, 2, 5, 5), (2, 3, 3, 3)),
    ("num_output: 2 kernel_size: 3 dilation: 2 dilation: 3", (1, 3, 10, 10), (1, 2, 6, 4), (2, 3, 3, 3)),
    ("num_output: 6 kernel_size: 1 group: 2", (1, 4, 5, 5), (1, 6, 5, 5), (6, 2, 1, 1)),
    ("num_output: 4 kernel_size: 3 group: 4 pad: 1", (1, 4, 5, 5), (1, 4, 5, 5), (4, 1, 3, 3)),
    ("num_output: 3 kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", (1, 2, 7, 5),
     (1, 3, 4, 5), (3, 2, 3, 1)),
    ("num_output: 3 kernel_size: 3 kernel_size: 5 stride: 1 stride: 2 pad: 0 pad: 2", (1, 2, 7, 9),
     (1, 3, 5, 5), (3, 2, 3, 5)),
    ("num_output: 2 kernel_size: 3", (2, 1, 5, 6, 7), (2, 2, 3, 4, 5), (2, 1, 3, 3, 3)),
])
def test_convolution(params: str, x: tuple, out: tuple, weight: tuple) -> None:
    result = _infer(CONV.format(params), x)
    assert result.outputs == [out] and result.blobs == [weight, (out[1],)]


def test_convolution_without_bias_and_errors() -> None:
    assert _infer(CONV.format("num_output: 2 kernel_size: 1 bias_term: false"), (1, 3, 4, 4)).blobs == [(2, 3, 1, 1)]
    assert "group 3" in _error(CONV.format("num_output: 6 kernel_size: 1 group: 3"), (1, 4, 5, 5))
    assert "both" in _error(CONV.format("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3"), (1, 1, 5, 5))
    assert "empty output" in _error(CONV.format("num_output: 2 kernel_size: 5"), (1, 1, 3, 3))
    assert "num_output" in _error(CONV.format("kernel_size: 1"), (1, 1, 3, 3))
    assert "kernel" in _error(CONV.format("num_output: 1"), (1, 1, 3, 3))
    assert "3 values for 2" in _error(CONV.format("num_output: 1 kernel_size: 1 kernel_size: 2 kernel_size: 3"),
                                      (1, 1, 3, 3))


@pytest.mark.parametrize("params, x, out, weight", [
    ("num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 2", (1, 4, 5, 5), (1, 6, 10, 10), (4, 3, 4, 4)),
    ("num_output: 2 kernel_size: 3 stride: 2", (1, 3, 4, 4), (1, 2, 9, 9), (3, 2, 3, 3)),
    ("num_output: 2 kernel_size: 3 dilation: 2", (1, 3, 5, 5), (1, 2, 9, 9), (3, 2, 3, 3)),
    ("num_output: 1 kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 3", (1, 1, 3, 3), (1, 1, 6, 9), (1, 1, 2, 3)),
])
def test_deconvolution(params: str, x: tuple, out: tuple, weight: tuple) -> None:
    result = _infer(DECONV.format(params), x)
    assert result.outputs == [out] and result.blobs == [weight, (out[1],)]


POOL = 'type: "Pooling" pooling_param {{ {} }}'


@pytest.mark.parametrize("params, hw, out", [
    ("kernel_size: 3 stride: 2", (6, 6), (3, 3)),                        # ceil: windows overhang
    ("kernel_size: 3 stride: 2 round_mode: FLOOR", (6, 6), (2, 2)),
    ("kernel_size: 3 stride: 2 ceil_mode: false", (6, 6), (2, 2)),
    ("kernel_size: 3 stride: 2", (7, 7), (3, 3)),                        # exact fit: no overhang
    ("kernel_size: 2 stride: 2 pad: 1", (5, 5), (3, 3)),                 # ceil gives 4, last window starts in the pad
    ("kernel_size: 2 stride: 2 pad: 1 round_mode: FLOOR", (5, 5), (3, 3)),
    ("kernel_size: 3 stride: 2 pad: 1", (6, 6), (4, 4)),                 # ceil overhang kept: last start 6 < 6 + 1
    ("kernel_size: 3 stride: 2 pad: 1", (7, 7), (4, 4)),
    ("kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1", (7, 5), (3, 4)),
    ("kernel_h: 3 kernel_w: 1 stride: 2 pad_h: 1 pad_w: 0", (6, 4), (4, 2)),  # rule on both axes: pad_h || pad_w
    ("kernel_h: 3 kernel_w: 1 stride: 2", (6, 4), (3, 3)),               # no pad: no rule, even past the edge
    ("global_pooling: true", (7, 5), (1, 1)),
    ("global_pooling: true pool: AVE round_mode: FLOOR", (7, 5), (1, 1)),
])
def test_pooling(params: str, hw: tuple[int, int], out: tuple[int, int]) -> None:
    assert _out(POOL.format(params), (2, 3, *hw)) == (2, 3, *out)


def test_pooling_errors_and_two_tops() -> None:
    assert _out(POOL.format("kernel_size: 2 stride: 2"), (1, 2, 4, 4), tops=2) == [(1, 2, 2, 2)] * 2
    assert "global_pooling takes no kernel" in _error(POOL.format("global_pooling: true kernel_size: 2"), (1, 1, 4, 4))
    assert "smaller than the kernel" in _error(POOL.format("kernel_size: 2 pad: 2"), (1, 1, 4, 4))
    assert "together" in _error(POOL.format("kernel_h: 2"), (1, 1, 4, 4))
    assert "needs kernel_size" in _error(POOL.format("stride: 2"), (1, 1, 4, 4))
    assert "4-D" in _error(POOL.format("kernel_size: 2"), (1, 4, 4))
    assert "STOCHASTIC" in _error(POOL.format("kernel_size: 2 pool: STOCHASTIC"), (1, 1, 4, 4))
    assert "empty output" in _error(POOL.format("kernel_size: 5"), (1, 1, 3, 3))


@pytest.mark.parametrize("params, out, weight", [
    ("num_output: 7", (2, 7), (7, 60)),
    ("num_output: 7 axis: 2", (2, 4, 7), (7, 15)),
    ("num_output: 7 axis: -1", (2, 4, 3, 7), (7, 5)),
    ("num_output: 7 transpose: true", (2, 7), (60, 7)),
])
def test_inner_product(params: str, out: tuple, weight: tuple) -> None:
    result = _infer(f'type: "InnerProduct" inner_product_param {{ {params} }}', (2, 4, 3, 5))
    assert result.outputs == [out] and result.blobs == [weight, (7,)]
    no_bias = _infer(f'type: "InnerProduct" inner_product_param {{ {params} bias_term: false }}', (2, 4, 3, 5))
    assert no_bias.blobs == [weight]


INTERP = 'type: "Interp" interp_param {{ {} }}'


@pytest.mark.parametrize("params, hw, out", [
    ("zoom_factor: 8", (7, 9), (49, 65)),
    ("shrink_factor: 3", (49, 65), (17, 22)),
    ("height: 60 width: 61", (7, 9), (60, 61)),
    ("height: 1 width: 1", (7, 9), (1, 1)),
    ("zoom_factor: 2 shrink_factor: 2", (9, 10), (9, 9)),            # shrink first: 5x5, then zoom: 9x9
    ("zoom_factor: 2 pad_beg: -1 pad_end: -1", (7, 9), (9, 13)),      # cropped to 5x7 first
    ("shrink_factor: 2 pad_end: -1", (8, 8), (4, 4)),
    ("zoom_factor: 1", (7, 9), (7, 9)),
    ("zoom_factor: 4 height: 5 width: 5", (3, 3), (9, 9)),           # zoom alone wins over height/width
])
def test_interp(params: str, hw: tuple, out: tuple) -> None:
    assert _out(INTERP.format(params), (1, 3, *hw)) == (1, 3, *out)


def test_interp_size_of_a_second_bottom_and_errors() -> None:
    assert _out('type: "Interp"', (1, 3, 4, 4), (2, 5, 9, 7)) == (1, 3, 9, 7)
    assert "pad_beg/pad_end <= 0" in _error(INTERP.format("zoom_factor: 2 pad_beg: 1"), (1, 1, 4, 4))
    assert ">= 1" in _error(INTERP.format("zoom_factor: 0"), (1, 1, 4, 4))
    assert "needs zoom_factor" in _error(INTERP.format("height: 4"), (1, 1, 4, 4))
    assert "empty input" in _error(INTERP.format("zoom_factor: 2 pad_beg: -2 pad_end: -2"), (1, 1, 4, 4))
    assert "4-D" in _error('type: "Interp"', (1, 3, 4, 4), (9, 7))


@pytest.mark.parametrize("params, out", [
    ("axis: 2 offset: 3 offset: 4", (1, 3, 7, 8)),
    ("axis: 1 offset: 0 offset: 2 offset: 1", (1, 3, 7, 8)),
    ("axis: 2 offset: 5", (1, 3, 7, 8)),
    ("axis: 3", (1, 3, 12, 8)),
])
def test_crop(params: str, out: tuple) -> None:
    assert _out(f'type: "Crop" crop_param {{ {params} }}', (1, 3, 12, 14), (1, 3, 7, 8)) == out


def test_crop_errors() -> None:
    assert "exceeds" in _error('type: "Crop" crop_param { axis: 2 offset: 6 }', (1, 3, 12, 14), (1, 3, 7, 8))
    assert "3 offsets for 2" in _error('type: "Crop" crop_param { axis: 2 offset: 1 offset: 1 offset: 1 }',
                                       (1, 3, 12, 14), (1, 3, 7, 8))
    assert "rank" in _error('type: "Crop"', (1, 3, 12, 14), (7, 8))


def test_concat() -> None:
    assert _out('type: "Concat"', (1, 3, 5, 5), (1, 5, 5, 5), (1, 6, 5, 5)) == (1, 14, 5, 5)
    assert _out('type: "Concat" concat_param { axis: 2 }', (1, 3, 5, 5), (1, 3, 2, 5)) == (1, 3, 7, 5)
    assert _out('type: "Concat" concat_param { axis: -1 }', (1, 3, 5, 5), (1, 3, 5, 1)) == (1, 3, 5, 6)
    assert _out('type: "Concat" concat_param { concat_dim: 0 }', (1, 3), (4, 3)) == (5, 3)
    assert "differ outside axis 1" in _error('type: "Concat"', (1, 3, 5, 5), (1, 3, 4, 5))
    assert "out of range" in _error('type: "Concat" concat_param { axis: 4 }', (1, 3, 5, 5), (1, 3, 5, 5))


def test_slice() -> None:
    x = (1, 14, 5, 5)
    assert _out('type: "Slice" slice_param { axis: 1 slice_point: 2 slice_point: 9 }', x, tops=3) == \
        [(1, 2, 5, 5), (1, 7, 5, 5), (1, 5, 5, 5)]
    assert _out('type: "Slice" slice_param { axis: 2 }', (1, 2, 6, 5), tops=3) == [(1, 2, 2, 5)] * 3
    assert _out('type: "Slice" slice_param { slice_dim: 0 slice_point: 1 }', (3, 2), tops=2) == [(1, 2), (2, 2)]
    assert "evenly" in _error('type: "Slice"', x, tops=3)
    assert "does not split" in _error('type: "Slice" slice_param { slice_point: 9 slice_point: 2 }', x, tops=3)
    assert "does not split" in _error('type: "Slice" slice_param { slice_point: 14 }', x, tops=2)
    assert "does not split" in _error('type: "Slice" slice_param { slice_point: 2 }', x, tops=3)
    assert "at least one top" in _error('type: "Slice"', x, tops=0)


@pytest.mark.parametrize("params, out", [
    ("shape { dim: 0 dim: -1 dim: 5 }", (2, 12, 5)),
    ("shape { dim: -1 }", (120,)),
    ("shape { dim: 0 dim: 0 dim: 15 }", (2, 4, 15)),
    ("shape { dim: -1 } axis: 1 num_axes: 2", (2, 12, 5)),
    ("shape { dim: 2 dim: 2 } axis: 1 num_axes: 1", (2, 2, 2, 3, 5)),
    ("shape { dim: 1 } axis: 0 num_axes: 0", (1, 2, 4, 3, 5)),
    ("shape { dim: 1 } axis: -1 num_axes: 0", (2, 4, 3, 5, 1)),
    ("shape { dim: 0 dim: 0 dim: 0 dim: 0 }", (2, 4, 3, 5)),
])
def test_reshape(params: str, out: tuple) -> None:
    assert _out(f'type: "Reshape" reshape_param {{ {params} }}', (2, 4, 3, 5)) == out


@pytest.mark.parametrize("params, fragment", [
    ("shape { dim: -1 dim: -1 }", "more than one -1"),
    ("shape { dim: 7 dim: -1 }", "cannot infer -1"),
    ("shape { dim: 2 dim: 2 }", "changes the element count"),
    ("shape { dim: 0 dim: 0 dim: 0 dim: 0 dim: 0 }", "non-existent axis"),
    ("shape { dim: -2 }", "invalid"),
    ("shape { dim: 1 } axis: 9", "out of range"),
])
def test_reshape_errors(params: str, fragment: str) -> None:
    assert fragment in _error(f'type: "Reshape" reshape_param {{ {params} }}', (2, 4, 3, 5))


def test_flatten() -> None:
    x = (2, 4, 3, 5)
    assert _out('type: "Flatten"', x) == (2, 60)
    assert _out('type: "Flatten" flatten_param { axis: 2 }', x) == (2, 4, 15)
    assert _out('type: "Flatten" flatten_param { end_axis: 2 }', x) == (2, 12, 5)
    assert _out('type: "Flatten" flatten_param { axis: 0 }', x) == (120,)


@pytest.mark.parametrize("params, out", [
    ("axis: 1", (2, 1, 4, 4)),
    ("axis: 1 top_k: 3", (2, 3, 4, 4)),
    ("axis: -1 out_max_val: true", (2, 6, 4, 1)),
    ("", (2, 1, 1, 1)),                      # Caffe: (N, 1 or 2, top_k) padded with 1s to the input's rank
    ("out_max_val: true", (2, 2, 1, 1)),
    ("top_k: 2 out_max_val: true", (2, 2, 2, 1)),
])
def test_argmax(params: str, out: tuple) -> None:
    assert _out(f'type: "ArgMax" argmax_param {{ {params} }}', (2, 6, 4, 4)) == out


def test_argmax_of_a_matrix() -> None:
    assert _out('type: "ArgMax" argmax_param { top_k: 3 }', (4, 10)) == (4, 1, 3)


def test_argmax_top_k_too_large() -> None:
    assert "top_k 7 exceeds" in _error('type: "ArgMax" argmax_param { axis: 1 top_k: 7 }', (2, 6, 4, 4))


@pytest.mark.parametrize("params, out", [
    ("", ()), ("axis: 2", (2, 6)), ("axis: -1 operation: SUMSQ", (2, 6, 4)), ("axis: 1 operation: MEAN", (2,)),
])
def test_reduction(params: str, out: tuple) -> None:
    assert _out(f'type: "Reduction" reduction_param {{ {params} }}', (2, 6, 4, 4)) == out


def test_per_channel_blobs() -> None:
    x = (2, 5, 3, 3)
    assert _infer('type: "BN" bn_param { eps: 1e-5 }', x).blobs == [(5,)] * 4  # eps: PSPNet's field
    assert _infer('type: "BN" bn_param { bn_mode: INFERENCE }', x).blobs == [(5,)] * 2  # SegNet/ENet's
    assert _reading_infer('type: "BN"', [x], "pspnet").blobs == [(5,)] * 4
    assert _reading_infer('type: "BN"', [x], "segnet").blobs == [(5,)] * 2
    assert _infer('type: "Normalize" norm_param { channel_shared: false }', x).blobs == [(5,)]
    assert _infer('type: "Normalize"', x).blobs == [(1,)]
    assert _infer('type: "BatchNorm"', x).blobs == [(5,), (5,), (1,)]
    assert _infer('type: "PReLU"', x).blobs == [(5,)]
    assert _infer('type: "PReLU" prelu_param { channel_shared: true }', x).blobs == [(1,)]
    assert _infer('type: "Scale" scale_param { bias_term: true }', x).blobs == [(5,), (5,)]
    assert _infer('type: "Scale" scale_param { axis: 1 num_axes: 2 }', x).blobs == [(5, 3)]
    assert _infer('type: "Scale" scale_param { axis: 0 num_axes: -1 }', x).blobs == [x]
    assert _infer('type: "Bias"', x).blobs == [(5,)]
    assert "channel axis" in _error('type: "BN" bn_param { frozen: true }', (5,))


def test_simple_shape_preserving_and_misc() -> None:
    x = (2, 5, 3, 3)
    for t in ("ReLU", "Sigmoid", "TanH", "Dropout", "LRN", "Softmax", "MVN", "Power"):
        assert _out(f'type: "{t}"', x) == x
    assert _out('type: "Eltwise"', x, x, x) == x
    assert "differ" in _error('type: "Eltwise"', x, (2, 5, 3, 4))
    assert _out('type: "Split"', x, tops=3) == [x] * 3
    assert _out('type: "Tile" tile_param { axis: 2 tiles: 3 }', x) == (2, 5, 9, 3)
    assert _out('type: "Permute" permute_param { order: 0 order: 2 order: 3 order: 1 }', x) == (2, 3, 3, 5)
    assert _out('type: "Upsample" upsample_param { scale: 2 }', x) == (2, 5, 6, 6)
    assert _infer('type: "Silence"', x, tops=0).outputs == []
    assert "more than" in _error('type: "Tile" tile_param { axis: 0 tiles: 2000000000 }', x)


def test_shape_errors_from_load_net_name_file_line_and_layer(tmp_path: Path) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text('layer { name: "data" type: "Input" top: "data"\n'
                    '  input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n'
                    '\n'
                    'layer { name: "big" type: "Convolution" bottom: "data" top: "c"\n'
                    '  convolution_param { num_output: 2 kernel_size: 7 } }\n')
    with pytest.raises(ShapeError) as info:
        load_net(path)
    msg = str(info.value)
    assert len(msg.splitlines()) == 1 and msg.startswith(f"{path}:4, layer 'big': ")


def _reading_infer(layer: str, in_shapes: list[tuple[int, ...]], reading: str | None,
                   tops: int = 1) -> shapes.ShapeResult:
    param = text_format.Parse(layer, caffe_pb2.LayerParameter())
    param.top.extend(f"t{i}" for i in range(tops))
    return shapes.infer(param, in_shapes, reading)


def test_bn_without_evidence_is_refused_not_guessed() -> None:
    msg = _error('type: "BN"', (1, 3, 4, 4))
    assert "'pspnet'" in msg and "'segnet'" in msg
    with pytest.raises(Caffe2TFError, match="contradictory"):
        _infer('type: "BN" bn_param { eps: 1e-5 bn_mode: INFERENCE }', (1, 3, 4, 4))


def test_upsample_both_readings() -> None:
    x = (1, 3, 5, 7)
    assert _out('type: "Upsample" upsample_param { scale: 3 }', x) == (1, 3, 15, 21)
    # YOLO's default scale is 1 (the schema's 2 is SegNet's)
    assert _reading_infer('type: "Upsample"', [x], "nearest").outputs == [x]
    assert _out('type: "Upsample"', x, x) == (1, 3, 10, 14)  # SegNet default scale 2
    assert _out('type: "Upsample" upsample_param { scale: 2 upsample_h: 9 upsample_w: 13 }', x, x) == (1, 3, 9, 13)
    assert _out('type: "Upsample" upsample_param { scale_h: 2 scale_w: 3 }', x, x) == (1, 3, 10, 21)
    assert _out('type: "Upsample" upsample_param { pad_out_h: true }', x, x) == (1, 3, 9, 14)
    assert "differ in shape" in _error('type: "Upsample"', x, (1, 3, 5, 6))
    assert "both" in _error('type: "Upsample" upsample_param { upsample_h: 9 }', x, x)
    assert "scale" in _error('type: "Upsample" upsample_param { pad_out_h: true scale: 3 }', x, x)
    with pytest.raises(Caffe2TFError, match="contradictory"):
        _infer('type: "Upsample" upsample_param { upsample_h: 10 upsample_w: 14 }', x)


def test_pooling_mask_top() -> None:
    x = (2, 3, 8, 8)
    pool = 'type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }'
    assert _out(pool, x, tops=2) == [(2, 3, 4, 4), (2, 3, 4, 4)]
    assert "second top" in _error(pool.replace("MAX", "AVE"), x, tops=2)
    assert "second top" in _error(pool, x, tops=3)


PRIORS = 'type: "PriorBox" prior_box_param { min_size: 30 max_size: 60 aspect_ratio: 2 flip: true step: 8 }'


@pytest.mark.parametrize("params, per_cell", [
    ("min_size: 30 max_size: 60 aspect_ratio: 2", 4),             # 1, 2, 1/2, sqrt(min*max)
    ("min_size: 60 max_size: 111 aspect_ratio: 2 aspect_ratio: 3", 6),
    ("min_size: 20 min_size: 30 aspect_ratio: 2 flip: false", 4),  # (1, 2) per min_size
    ("min_size: 30 aspect_ratio: 1 aspect_ratio: 2 aspect_ratio: 2.0000001", 3),  # duplicates dropped
])
def test_priorbox_shape(params: str, per_cell: int) -> None:
    out = _out(f'type: "PriorBox" prior_box_param {{ {params} }}', (1, 8, 3, 5), (1, 3, 48, 80))
    assert out == (1, 2, 3 * 5 * per_cell * 4)


@pytest.mark.parametrize("params, message", [
    ("max_size: 60", "min_size"),
    ("min_size: 30 max_size: 20", "greater"),
    ("min_size: 30 min_size: 40 max_size: 60", "max_size"),
    ("min_size: 30 variance: 0.1 variance: 0.2", "variances"),
    ("min_size: 30 step: 8 step_h: 8", "not both"),
    ("min_size: 30 img_size: 300 img_h: 300", "not both"),
])
def test_priorbox_refuses(params: str, message: str) -> None:
    assert message in _error(f'type: "PriorBox" prior_box_param {{ {params} }}', (1, 8, 3, 5), (1, 3, 48, 80))


DETECT = 'type: "DetectionOutput" detection_output_param { num_classes: 3 share_location: %s }'


def test_detection_output_rows_are_data_dependent() -> None:
    priors = (1, 2, 10 * 4)
    assert _out(DETECT % "true", (2, 40), (2, 30), priors) == (1, 1, None, 7)
    assert _out(DETECT % "false", (2, 120), (2, 30), priors) == (1, 1, None, 7)
    assert "loc" in _error(DETECT % "true", (2, 41), (2, 30), priors)
    assert "conf" in _error(DETECT % "true", (2, 40), (2, 31), priors)
    assert "PriorBox" in _error(DETECT % "true", (2, 40), (2, 30), (1, 40))


def test_detection_output_consumer_gets_unknown_shape(tmp_path: Path) -> None:
    """A layer fed by a data-dependent shape gets an unknown shape, never arithmetic on None."""
    proto = tmp_path / "d.prototxt"
    proto.write_text('''
layer { name: "loc" type: "Input" top: "loc" input_param { shape { dim: 1 dim: 40 } } }
layer { name: "conf" type: "Input" top: "conf" input_param { shape { dim: 1 dim: 30 } } }
layer { name: "pri" type: "Input" top: "pri" input_param { shape { dim: 1 dim: 2 dim: 40 } } }
layer { name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "pri" top: "det"
        detection_output_param { num_classes: 3 } }
layer { name: "after" type: "ReLU" bottom: "det" top: "after" }
''')
    g = load_net(proto)
    assert g.shape("det") == (1, 1, None, 7)
    assert g.shape("after") is None


def test_tile_relu6_elu_prelu_shapes() -> None:
    x = (2, 3, 4, 5)
    assert _out('type: "Tile" tile_param { axis: 1 tiles: 3 }', x) == (2, 9, 4, 5)
    assert _out('type: "Tile" tile_param { axis: -1 tiles: 2 }', x) == (2, 3, 4, 10)
    assert _out('type: "ReLU6"', x) == x
    assert _out('type: "ELU" elu_param { alpha: 0.5 }', x) == x
    assert _infer('type: "PReLU"', (4, 6)).blobs == [(6,)]
