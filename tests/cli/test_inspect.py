"""`caffe2tf inspect`: the JSON shapes equal what real Caffe recorded, for every shared case."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

from caffe2tf.cli import cli
from pending_cases import marks as pending_marks

ROOT = Path(__file__).resolve().parents[2]
REF_ROOT = ROOT.parent / "shared" / "caffe_reference"
# Types whose output has a data-dependent dimension (the rows of DetectionOutput).
DATA_DEPENDENT = {"DetectionOutput": 2}
CASES = sorted(p.name for p in REF_ROOT.glob("*/") if (p / "net.prototxt").exists())


def _recorded_shapes(h5_path: Path) -> dict[str, list[list[int]]]:
    out = {}
    with h5py.File(h5_path, "r") as f:
        for key in f["layers"]:
            g = f["layers"][key]
            shapes = []
            for t in range(len(json.loads(g.attrs["tops"]))):
                obj = g[f"top{t}"]
                shapes.append(list(obj.shape) if isinstance(obj, h5py.Dataset) else [int(d) for d in obj.attrs["shape"]])
            out[g.attrs["name"]] = shapes
    return out


def test_cases_discovered():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", [pytest.param(c, marks=pending_marks("reader", c)) for c in CASES])
def test_inspect_json_shapes_match_reference(case):
    d = REF_ROOT / case
    res = CliRunner().invoke(cli, ["inspect", str(d / "net.prototxt"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    by_name = {layer["name"]: layer for layer in doc["layers"]}
    recorded = _recorded_shapes(d / "reference.h5")
    assert recorded
    for name, shapes in recorded.items():
        ours = by_name[name]["output_shapes"]
        if by_name[name]["type"] in DATA_DEPENDENT:  # rows known only at run time: null there, and only there
            axis = DATA_DEPENDENT[by_name[name]["type"]]
            assert [s[axis] for s in ours] == [None] * len(ours), name
            ours = [[r[axis] if i == axis else d for i, d in enumerate(s)] for s, r in zip(ours, shapes)]
        assert ours == shapes, name
    for layer in doc["layers"]:
        assert set(layer) >= {"name", "type", "inputs", "outputs", "output_shapes"}


def test_inspect_table_and_totals():
    d = REF_ROOT / "pspnet50_ade20k_473"
    res = CliRunner().invoke(cli, ["inspect", str(d / "net.prototxt")])
    assert res.exit_code == 0, res.output
    assert "206 layers" in res.output
    assert "161.53G multiply-adds" in res.output


def test_inspect_input_shape_override():
    d = REF_ROOT / "conv_basic"
    res = CliRunner().invoke(cli, ["inspect", str(d / "net.prototxt"), "--json", "--input-shape", "data=1,3,20,20"])
    assert res.exit_code == 0, res.output
    conv = [l for l in json.loads(res.output)["layers"] if l["name"] == "conv"][0]
    assert conv["output_shapes"] == [[1, 8, 20, 20]]


@pytest.mark.parametrize("text,needle", [
    ('layer { name: "a" type: "Python" top: "x" python_param { module: "os" layer: "system" } }', "Python"),
    ('layer { name: "c" type: "Convolution" bottom: "nope" top: "c" }', "bottom 'nope'"),
    ('layer { name: "d" type: "Input" top: "d" input_param { shape { dim: 1 dim: 3 dim: 1000000000 dim: 1000000000 } } }', "elements"),
    ('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'
     'layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { kernel_size: 3 stride: 0 } }', "stride"),
    ('layer { name: "x" type: "Input" top: "x" \n  oops_field: 3 }', "oops_field"),
    ('layer { name: "x" type: "Input" top: "x" ', "syntax error"),
])
def test_bad_input_one_line_exit_2(tmp_path, text, needle):
    p = tmp_path / "bad.prototxt"
    p.write_text(text)
    res = CliRunner().invoke(cli, ["inspect", str(p)])
    assert res.exit_code == 2
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert len(lines) == 1, res.output
    assert str(p) in lines[0] and needle in lines[0]
    assert "Traceback" not in res.output


@pytest.mark.parametrize("case, with_weights, readings", [
    ("bn_enet_inference", True, {"conv/bn": "segnet"}),
    ("bn_enet_inference", False, {"conv/bn": "segnet"}),  # bn_param's own fields decide
    ("bn_pspnet", True, {"conv/bn": "pspnet"}),
    ("upsample_mask", False, {"unpool": "unpool", "unpool_odd": "unpool"}),
    ("upsample_nearest", False, {"up2": "nearest", "up3": "nearest"}),
    ("conv_basic", False, {}),
])
def test_inspect_shows_fork_readings(case, with_weights, readings):
    d = REF_ROOT / case
    args = [str(d / "net.prototxt")] + ([str(d / "weights.caffemodel")] if with_weights else [])
    res = CliRunner().invoke(cli, ["inspect", "--json", *args])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["readings"] == readings
    assert {l["name"]: l["reading"] for l in doc["layers"] if l["reading"]} == readings
    table = CliRunner().invoke(cli, ["inspect", *args]).output
    for name, reading in readings.items():
        row = next(ln for ln in table.splitlines() if ln.startswith(name + " "))
        assert f"[{reading}]" in row, row
        assert f"read as '{reading}'" in table


def test_inspect_says_when_only_the_caffemodel_can_decide(tmp_path):
    p = tmp_path / "bn.prototxt"
    p.write_text('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n'
                 'layer { name: "bn" type: "BN" bottom: "x" top: "y" }\n')
    res = CliRunner().invoke(cli, ["inspect", str(p)])
    assert res.exit_code == 0, res.output
    assert "BN[undecided]" in res.output
    assert "BN read as 'undecided' (undecided without the caffemodel: pspnet or segnet)" in res.output
    doc = json.loads(CliRunner().invoke(cli, ["inspect", "--json", str(p)]).output)
    assert doc["readings"] == {"bn": "undecided"}


def test_inspect_data_dependent_rows_and_aliases(tmp_path):
    res = CliRunner().invoke(cli, ["inspect", str(REF_ROOT / "detectionoutput_basic" / "net.prototxt")])
    assert res.exit_code == 0, res.output
    assert "1x1x?x7" in res.output
    p = tmp_path / "dw.prototxt"
    p.write_text('layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n'
                 'layer { name: "dw" type: "ConvolutionDepthwise" bottom: "x" top: "y" '
                 'convolution_param { num_output: 3 kernel_size: 3 } }\n')
    res = CliRunner().invoke(cli, ["inspect", str(p)])
    assert res.exit_code == 0, res.output
    assert "fork aliases read as their BVLC type: dw (ConvolutionDepthwise)" in res.output
    doc = json.loads(CliRunner().invoke(cli, ["inspect", "--json", str(p)]).output)
    assert doc["layers"][1]["type"] == "Convolution" and doc["layers"][1]["original_type"] == "ConvolutionDepthwise"
    assert doc["layers"][1]["params"] == 3 * 9 + 3
