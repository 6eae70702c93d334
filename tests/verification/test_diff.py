"""caffe2tf.verification.diff, sources and dump_reference, and the `diff` / `dump-reference` commands.

* the culprit rule on synthetic activations (growth vs. jump, per-type amplification,
  shapes, NaN, values not compared) and the report's renderings;
* the three reference sources (recorded file, pycaffe, built-in executor) agree on
  the shared cases. pycaffe is not installed here: a stand-in ``caffe`` module with
  pycaffe's Net API (blobs, layers, _layer_names, bottom_names/top_names, inputs,
  _forward, reshape), driven by the built-in executor and inserting Caffe's Split
  layers, is injected through ``sys.modules``; the real one is tested when present;
* the command line: exit 0 / 1 / 2, --json, --input preprocessing, --plugin.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from caffe2tf.cli import cli
from caffe2tf.frontend.prototxt import parse_prototxt
from caffe2tf.frontend.reader import load_net
from caffe2tf.errors import Caffe2TFError
from caffe2tf.verification import dump_reference as dump
from caffe2tf.verification import sources
from caffe2tf.verification.diff import (
    DiffReport, amplification_for, compare_activations, default_tolerance, diff_net, fmt_err, verify_conversion)
from caffe2tf.verification.reference import check_supported, run_node
from caffe2tf.verification.reference_file import RecordedLayer, RecordedOutput, ReferenceFile, read_reference
from caffe2tf.verification.report_terminal import render_terminal
from pending_cases import marks as pending_marks

SHARED_REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "caffe_reference"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ------------------------------------------------------------------ synthetic activations

def chain_graph(tmp_path: Path, types_: list[str]):
    """data (1x2x4x4) -> one layer per type (shape-preserving), named l0, l1, ..."""
    params = {"Convolution": "convolution_param { num_output: 2 kernel_size: 1 }", "BN": "", "ReLU": "",
              "Scale": "scale_param { bias_term: true }", "Pooling": "pooling_param { pool: MAX kernel_size: 1 }"}
    lines = ['layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }']
    prev = "data"
    for i, t in enumerate(types_):
        lines.append(f'layer {{ name: "l{i}" type: "{t}" bottom: "{prev}" top: "l{i}" {params[t]} }}')
        prev = f"l{i}"
    path = tmp_path / "chain.prototxt"
    path.write_text("\n".join(lines))
    return load_net(path)


def fabricate(graph, errors: list[float], seed: int = 0, ref_abs_max: float = 2.0):
    """Reference activations and model activations whose max rel error at layer i is errors[i]."""
    rng = np.random.RandomState(seed)
    actual, layers = {}, []
    for node, err in zip([n for n in graph.nodes if n.type != "Input"], errors):
        vid = node.outputs[0]
        ref = rng.uniform(-1, 1, graph.values[vid].shape).astype(np.float64)
        ref.flat[0] = ref_abs_max
        act = ref.copy()
        act.flat[5] += err * ref_abs_max
        layers.append(RecordedLayer(len(layers), node.name, node.type, [], [graph.values[vid].blob],
                                    [RecordedOutput(shape=ref.shape, array=ref.astype(np.float32))]))
        actual[vid] = act
    return actual, ReferenceFile("synthetic", {}, {"data": np.zeros((1, 2, 4, 4), np.float32)}, layers)


def test_rounding_growth_is_not_a_culprit(tmp_path) -> None:
    graph = chain_graph(tmp_path, ["Convolution", "BN", "ReLU"] * 8)
    errors = [1e-7 * 1.6 ** k for k in range(24)]  # grows ~80000x overall, 1.6x per layer
    report = compare_activations(graph, *fabricate(graph, errors), tolerance=1e-5)
    assert report.ok and report.exit_status == 0 and report.first_divergence is None
    over = report.over_tolerance
    assert over and {r.status for r in over} == {"growth"}
    assert report.headline.startswith("OK: no layer adds error beyond float32 rounding; accumulated rounding "
                                      f"takes {len(over)} of 24 layer outputs past 1e-5")


def test_all_within_tolerance(tmp_path) -> None:
    graph = chain_graph(tmp_path, ["Convolution", "ReLU"])
    report = compare_activations(graph, *fabricate(graph, [1e-7, 2e-7]))
    assert report.headline == "OK: all 2 layer outputs within 1e-5"
    assert "under 50 layers; this one has 2" in report.tolerance_origin


def test_a_jump_names_the_culprit_and_taints_downstream(tmp_path) -> None:
    graph = chain_graph(tmp_path, ["Convolution", "ReLU", "Convolution", "ReLU", "Convolution"])
    report = compare_activations(graph, *fabricate(graph, [1e-7, 1e-7, 3e-3, 3e-3, 4e-3]))
    c = report.first_divergence
    assert report.exit_status == 1 and c is not None and c.name == "l2"
    assert report.headline == ("FIRST DIVERGENCE: layer `l2` (Convolution, kernel 1 stride 1, 2 outputs): "
                               "max rel error 3e-3; inputs to it agree to 1e-7")
    assert [r.status for r in report.layers] == ["ok", "ok", "culprit", "propagated", "propagated"]


@pytest.mark.parametrize("layer_type,culprit", [("Convolution", True), ("ReLU", True), ("BN", False),
                                                ("Scale", False)])
def test_amplification_depends_on_the_layer_type(tmp_path, layer_type: str, culprit: bool) -> None:
    """50x what the input carried: too much for a convolution (30x), not for a normalisation (100x)."""
    graph = chain_graph(tmp_path, ["Convolution", layer_type])
    report = compare_activations(graph, *fabricate(graph, [2e-6, 1e-4]), tolerance=1e-5)
    assert (report.first_divergence is not None) == culprit
    assert report.layers[1].amplification == amplification_for(layer_type)
    assert report.layers[1].gain == pytest.approx(50, rel=1e-2)


def test_a_jump_below_the_tolerance_is_not_a_culprit(tmp_path) -> None:
    graph = chain_graph(tmp_path, ["Convolution", "ReLU"])
    report = compare_activations(graph, *fabricate(graph, [1e-9, 5e-6]))
    assert report.ok and [r.status for r in report.layers] == ["ok", "ok"]


def test_first_layer_fed_by_the_net_input(tmp_path) -> None:
    graph = chain_graph(tmp_path, ["Convolution", "ReLU"])
    report = compare_activations(graph, *fabricate(graph, [2e-5, 2e-5]))
    assert report.first_divergence.name == "l0"
    assert report.headline.endswith("max rel error 2e-5; inputs to it agree exactly")


def test_shape_mismatch_and_nan(tmp_path) -> None:
    graph = chain_graph(tmp_path, ["Convolution", "Pooling", "ReLU"])
    actual, ref = fabricate(graph, [1e-7, 1e-7, 1e-7])
    actual["l1"] = actual["l1"][:, :, :3, :3]
    actual["l2"] = actual["l2"][:, :, :3, :3]
    report = compare_activations(graph, actual, ref)
    assert [r.status for r in report.layers] == ["ok", "culprit", "propagated"]
    assert report.headline == ("FIRST DIVERGENCE: layer `l1` (Pooling, MAX, kernel 1 stride 1): output shape "
                               "1x2x3x3, the reference's is 1x2x4x4; inputs to it agree to 1e-7")
    actual, ref = fabricate(graph, [1e-7, 1e-7, 1e-7])
    actual["l1"] = np.full_like(actual["l1"], np.nan)
    report = compare_activations(graph, actual, ref)
    assert report.first_divergence.name == "l1" and "output is not finite" in report.headline


def test_values_not_compared_pass_their_input_error_on(tmp_path) -> None:
    graph = chain_graph(tmp_path, ["Convolution", "ReLU", "Convolution"])
    actual, ref = fabricate(graph, [1e-3, 1e-3, 1e-3], seed=1)
    del actual["l1"]
    report = compare_activations(graph, actual, ref, tolerance=1e-5)
    assert [r.status for r in report.layers] == ["culprit", "not_compared", "propagated"]
    assert report.layers[1].note == "the model does not expose it"
    assert report.layers[2].input_rel == pytest.approx(1e-3, rel=1e-3)


def test_reference_of_another_net_is_bad_input(tmp_path) -> None:
    graph = chain_graph(tmp_path, ["ReLU"])
    actual, ref = fabricate(graph, [0.0])
    ref.layers[0].name = "other"
    with pytest.raises(Caffe2TFError, match="shares no layer output"):
        compare_activations(graph, actual, ref)


def test_default_tolerance_and_formatting() -> None:
    assert default_tolerance(49)[0] == 1e-5 and default_tolerance(50)[0] == 2e-4
    assert "this one has 205" in default_tolerance(205)[1]
    assert [fmt_err(x) for x in (3.1e-2, 2e-7, 0.0, float("inf"), None, 1.0)] == \
        ["3.1e-2", "2e-7", "0", "inf", "-", "1e0"]


def test_json_and_terminal_renderings(tmp_path) -> None:
    graph = chain_graph(tmp_path, ["Convolution", "BN", "ReLU"] * 20)
    errors = [1e-7] * 60
    errors[31:] = [1e-2] * 29
    actual, ref = fabricate(graph, errors)
    actual["l45"] = actual["l45"][:, :1]
    report = compare_activations(graph, actual, ref)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["verdict"] == "divergence" and data["exit_status"] == 1 and data["first_divergence"] == "l31"
    assert data["tolerance"] == 2e-4 and len(data["layers"]) == 60 and data["layers"][45]["max_rel"] is None
    assert data["rule"]["amplification"]["BN"] == 100.0
    text = ANSI.sub("", render_terminal(report, width=80))
    lines = text.splitlines()
    assert lines[0] == report.headline == lines[-1]
    assert "tolerance: 2e-4 (default for nets of 50+ layers; this one has 60)" in lines
    assert all(len(line) <= 80 for line in lines[1:-1])
    row = next(line for line in lines if line.lstrip().startswith("31 l31"))
    assert row.rstrip().endswith("<<")
    short = ANSI.sub("", render_terminal(report, width=80, max_rows=10)).splitlines()
    assert any("rows above" in line for line in short) and any(" l31 " in line for line in short)


# ------------------------------------------------------------------ a stand-in for pycaffe

class _Blob:
    def __init__(self, shape=(1,)):
        self.data = np.zeros(shape, np.float32)

    def reshape(self, *shape):
        self.data = np.zeros(shape, np.float32)


class _Layer:
    def __init__(self, type_: str):
        self.type = type_
        self.blobs = []


class FakeNet:
    """pycaffe's Net API, layer by layer, computed by the built-in executor's kernels.

    Like Caffe it inserts a ``Split`` layer after every blob read by several layers
    (named ``<blob>_<producer>_<top index>_split``, tops ``..._split_<j>``)."""

    def __init__(self, prototxt, weights, phase):
        assert phase == FAKE_CAFFE.TEST
        graph = load_net(prototxt, weights)
        check_supported(graph)
        readers: dict[str, list[tuple[str, int]]] = {}
        for node in graph.nodes:
            for k, v in enumerate(node.inputs):
                readers.setdefault(v, []).append((node.name, k))
        renamed: dict[tuple[str, int], str] = {}
        # Caffe upgrades legacy `input:` fields into one Input layer named "input"
        legacy = list(parse_prototxt(prototxt).net.input)
        self._plan = []
        for node in graph.nodes:
            bottoms = [renamed.get((node.name, k), graph.values[v].blob) for k, v in enumerate(node.inputs)]
            tops = [graph.values[v].blob for v in node.outputs]
            self._plan.append((node.name, node.type, bottoms, tops, node))
            for t, v in enumerate(node.outputs):
                if len(readers.get(v, [])) > 1:
                    producer, index = ("input", legacy.index(tops[t])) if tops[t] in legacy and \
                        node.type == "Input" else (node.name, t)
                    split = f"{tops[t]}_{producer}_{index}_split"
                    split_tops = [f"{split}_{j}" for j in range(len(readers[v]))]
                    self._plan.append((split, "Split", [tops[t]], split_tops, None))
                    renamed.update(zip(readers[v], split_tops))
        self._layer_names = [p[0] for p in self._plan]
        self.layers = [_Layer(p[1]) for p in self._plan]
        self.bottom_names = OrderedDict((p[0], p[2]) for p in self._plan)
        self.top_names = OrderedDict((p[0], p[3]) for p in self._plan)
        self.blobs = OrderedDict()
        for name, type_, bottoms, tops, node in self._plan:
            for t, blob in enumerate(tops):
                shape = graph.values[node.outputs[t]].shape if node is not None else None
                # data-dependent dims (DetectionOutput's rows) are 0 until forward, as in Caffe
                self.blobs.setdefault(blob, _Blob(tuple(d or 0 for d in shape) if shape else (1,)))
        self.inputs = [p[3][0] for p in self._plan if p[1] == "Input"]
        self.forwarded: list[int] = []

    def reshape(self):
        pass

    def _forward(self, start, end):
        for i in range(start, end + 1):
            self.forwarded.append(i)
            name, type_, bottoms, tops, node = self._plan[i]
            if type_ == "Input":
                continue
            ins = [self.blobs[b].data for b in bottoms]
            outs = [ins[0].copy() for _ in tops] if type_ == "Split" else run_node(node, ins)
            for blob, arr in zip(tops, outs):
                self.blobs[blob].data = np.array(arr, np.float32)


FAKE_CAFFE = types.ModuleType("caffe")
FAKE_CAFFE.TEST = 1
FAKE_CAFFE.__version__ = "1.0.0-fake"
FAKE_CAFFE.set_mode_cpu = lambda: None
FAKE_CAFFE.Net = FakeNet


@pytest.fixture
def fake_caffe(monkeypatch):
    monkeypatch.setitem(sys.modules, "caffe", FAKE_CAFFE)
    return FAKE_CAFFE


def _shared_cases() -> list[object]:
    """Every case that ships its caffemodel; those the executor cannot run yet are the
    strict xfails of ``tests/pending_cases.py`` (never silently left out)."""
    return [pytest.param(d, id=d.name, marks=pending_marks("diff", d.name))
            for d in sorted(p.parent for p in SHARED_REFERENCE.glob("*/weights.caffemodel"))]


SHARED_CASES = _shared_cases()


def _max_rel(a: RecordedOutput, b: RecordedOutput) -> float:
    """``a`` (a full array) against ``b``, full or sampled (outputs over 262,144 values)."""
    assert a.shape == b.shape
    want = b.array if b.array is not None else b.value
    got = a.array if b.array is not None else a.array.reshape(-1)[b.index]
    return float(np.max(np.abs(got - want), initial=0.0) / max(b.abs_max, 1e-6))


@pytest.mark.parametrize("case", SHARED_CASES)
def test_three_sources_agree(case: Path, fake_caffe) -> None:
    recorded = read_reference(case / "reference.h5")
    prototxt, weights = str(case / "net.prototxt"), str(case / "weights.caffemodel")
    graph = load_net(prototxt, weights, input_shapes={b: a.shape for b, a in recorded.inputs.items()})
    builtin = sources.reference_from_builtin(graph, recorded.inputs)
    live = sources.reference_from_pycaffe(prototxt, weights, recorded.inputs, caffe=fake_caffe)
    # pycaffe's capture records what real Caffe's recording holds: same layers, tops, split-renamed bottoms
    assert [(r.name, r.type, r.bottoms, r.tops) for r in live.layers] == \
        [(r.name, r.type, r.bottoms, r.tops) for r in recorded.layers]
    by_name = {r.name: r for r in builtin.layers}
    for rec, got in zip(recorded.layers, live.layers):
        for t, out in enumerate(rec.outputs):
            assert _max_rel(got.outputs[t], out) <= 1e-5, (rec.name, t)
            assert _max_rel(by_name[rec.name].outputs[t], out) <= 1e-5, (rec.name, t)


@pytest.mark.parametrize("case", ["concat_slice_split", "in_place_chain", "bn_pspnet"])
def test_diff_is_ok_against_every_source(case: str, fake_caffe) -> None:
    d = SHARED_REFERENCE / case
    args = (str(d / "net.prototxt"), str(d / "weights.caffemodel"))
    reports = {"file": diff_net(*args, source="file", reference_path=str(d / "reference.h5")),
               "builtin": diff_net(*args, source="builtin"),
               "pycaffe": diff_net(*args, source="pycaffe", caffe=fake_caffe),
               "folded": diff_net(*args, source="builtin", folded=True)}
    for kind, report in reports.items():
        assert report.ok and report.exit_status == 0, (kind, report.headline)
    assert reports["pycaffe"].source.startswith("live Caffe (pycaffe 1.0.0-fake")
    assert len(reports["file"].compared) == sum(len(r.outputs) for r in read_reference(d / "reference.h5").layers)


def test_pycaffe_is_the_default_source_when_importable(fake_caffe) -> None:
    assert sources.choose_source(None, False, False) == "pycaffe"
    assert sources.choose_source(None, False, True) == "builtin"
    with pytest.raises(Caffe2TFError, match="at most one"):
        sources.choose_source("x.h5", True, False)


def test_without_pycaffe_the_default_is_builtin(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "caffe", None)  # `import caffe` raises ImportError
    assert not sources.pycaffe_available()
    assert sources.choose_source(None, False, False) == "builtin"
    with pytest.raises(Caffe2TFError, match="pycaffe is not importable"):
        sources.choose_source(None, True, False)


@pytest.mark.skipif(not sources.pycaffe_available(), reason="real pycaffe is not installed here")
def test_real_pycaffe_agrees_with_the_recording() -> None:
    import caffe

    d = SHARED_REFERENCE / "concat_slice_split"
    recorded = read_reference(d / "reference.h5")
    live = sources.reference_from_pycaffe(str(d / "net.prototxt"), str(d / "weights.caffemodel"),
                                          recorded.inputs, caffe=caffe)
    assert [r.name for r in live.layers] == [r.name for r in recorded.layers]
    for rec, got in zip(recorded.layers, live.layers):
        for t, out in enumerate(rec.outputs):
            assert _max_rel(got.outputs[t], out) <= 1e-5


# ------------------------------------------------------------------ dump-reference

def test_dump_reference_command_writes_the_interchange_format(tmp_path, fake_caffe) -> None:
    d = SHARED_REFERENCE / "concat_slice_split"
    out = tmp_path / "ref.h5"
    np.save(tmp_path / "x.npy", read_reference(d / "reference.h5").inputs["data"])
    res = CliRunner().invoke(cli, ["dump-reference", str(d / "net.prototxt"), str(d / "weights.caffemodel"),
                                   "-o", str(out), "--input", str(tmp_path / "x.npy")])
    assert res.exit_code == 0, res.output
    mine, theirs = read_reference(out), read_reference(d / "reference.h5")
    assert mine.attrs["format"] == "caffe-reference/1" and mine.attrs["num_layers"] == len(theirs.layers)
    assert [(r.name, r.bottoms, r.tops) for r in mine.layers] == [(r.name, r.bottoms, r.tops) for r in theirs.layers]
    np.testing.assert_array_equal(mine.inputs["data"], theirs.inputs["data"])
    report = diff_net(str(d / "net.prototxt"), str(d / "weights.caffemodel"), source="file", reference_path=str(out))
    assert report.ok


def test_dump_reference_samples_large_outputs(tmp_path, fake_caffe) -> None:
    d = SHARED_REFERENCE / "interp"
    net = dump.open_net(fake_caffe, d / "net.prototxt", d / "weights.caffemodel")
    arrays = {"data": dump.random_input((1, 3, 7, 9), seed=1)}
    out = tmp_path / "ref.h5"
    n = dump.write_reference_file(out, "interp", arrays, dump.capture_layers(net, arrays), "test",
                                  sample_threshold=1000, num_samples=300)
    ref = read_reference(out)
    assert n == len(ref.layers) == 5
    zoom = ref.layer("zoom").outputs[0]
    assert zoom.is_sampled and zoom.shape == (1, 3, 49, 65) and zoom.index.size == 300
    assert zoom.argmax_axis1.shape == (1, 49, 65)
    assert not ref.layer("same").outputs[0].is_sampled
    graph = load_net(d / "net.prototxt")
    actual = sources.reference_from_builtin(graph, arrays)
    values = {r.name: r.outputs[0].array for r in actual.layers}
    report = compare_activations(graph, values, ref)
    assert report.ok and report.layer_diff("zoom").sampled and report.layer_diff("zoom").argmax_agreement == 1.0


def test_dump_reference_module_is_standalone() -> None:
    """Only the standard library, NumPy, h5py, Pillow and pycaffe: it must run on the old
    Caffe machine without TensorFlow or the rest of caffe2tf."""
    tree = ast.parse(Path(dump.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    allowed = {"__future__", "argparse", "datetime", "json", "logging", "re", "sys", "numpy", "h5py", "PIL",
               "caffe"}
    assert imported <= allowed, imported - allowed
    code = ("import sys\nfrom caffe2tf.cli import main\ntry:\n    main(['dump-reference', '--help'])\n"
            "except SystemExit as e:\n    assert e.code == 0\n"
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\nassert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def test_standalone_main_with_pycaffe(tmp_path, fake_caffe) -> None:
    d = SHARED_REFERENCE / "bn_pspnet"
    out = tmp_path / "r.h5"
    assert dump.main([str(d / "net.prototxt"), str(d / "weights.caffemodel"), "-o", str(out), "--seed", "3"]) == 0
    assert [r.name for r in read_reference(out).layers] == ["conv", "conv/bn", "conv/relu"]
    assert dump.main([str(d / "net.prototxt"), str(d / "weights.caffemodel"), "--input", "a.npy",
                      "--mean", "1,2"]) == 2


def test_image_preprocessing_caffe_style(tmp_path) -> None:
    from PIL import Image

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    Image.fromarray(rgb).save(tmp_path / "im.png")
    x = dump.load_input(str(tmp_path / "im.png"), (1, 3, 4, 6), mean=[1, 2, 3], scale=0.5, bgr=True)
    assert x.shape == (1, 3, 4, 6) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], [(30 - 1) * 0.5, (20 - 2) * 0.5, (10 - 3) * 0.5])
    y = dump.load_input(str(tmp_path / "im.png"), (1, 3, 4, 6), resize=(8, 8))
    assert y.shape == (1, 3, 8, 8)
    with pytest.raises(dump.InputError, match="3 channels"):
        dump.load_input(str(tmp_path / "im.png"), (1, 1, 4, 6))


# ------------------------------------------------------------------ verify_conversion

def test_verify_conversion_unfolded_and_folded() -> None:
    from caffe2tf.backend.build import build_keras_model
    from caffe2tf.passes import run_passes

    d = SHARED_REFERENCE / "batchnorm_scale"
    original = load_net(d / "net.prototxt", d / "weights.caffemodel")
    report = verify_conversion(original, seed=1)
    assert isinstance(report, DiffReport) and report.ok and report.source_kind == "builtin"
    assert [r.name for r in report.compared] == ["conv", "bn", "scale", "relu"]
    folded = run_passes(original, fold=True)
    build = build_keras_model(folded, outputs="all")
    report = verify_conversion(folded, build, reference_graph=original)
    assert report.ok and report.folded and report.layers[0].folded == ("bn", "scale")
    assert report.layers[0].note == "compared with the output of scale"
    graph_only = build_keras_model(original, outputs="graph")
    report = verify_conversion(original, graph_only)
    assert report.ok and [r.name for r in report.compared] == ["relu"]


# ------------------------------------------------------------------ the command line

def _run(*args: str):
    return CliRunner().invoke(cli, ["diff", *args])


def test_cli_ok_json_and_tolerance(tmp_path) -> None:
    d = SHARED_REFERENCE / "inner_product_after_conv"
    res = _run(str(d / "net.prototxt"), str(d / "weights.caffemodel"), "--reference", str(d / "reference.h5"),
               "--json", str(tmp_path / "r.json"), "--tolerance", "1e-4")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == "OK: all 4 layer outputs within 1e-4"
    assert "tolerance: 1e-4 (given with --tolerance)" in res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "ok" and [r["name"] for r in data["layers"]] == ["conv", "fc", "fc2", "prob"]


def test_cli_image_input_with_builtin(tmp_path) -> None:
    from PIL import Image

    Image.fromarray(np.random.RandomState(0).randint(0, 255, (20, 30, 3), np.uint8)).save(tmp_path / "im.jpg")
    d = SHARED_REFERENCE / "conv_basic"
    res = _run(str(d / "net.prototxt"), str(d / "weights.caffemodel"), "--builtin", "--input",
               str(tmp_path / "im.jpg"), "--bgr", "--mean", "104,117,123", "--scale", "0.017", "--resize", "9,11")
    assert res.exit_code == 0, res.output
    assert "im.jpg (mean 104,117,123, scale 0.017, BGR, resized to 9x11)" in " ".join(res.output.split())


def test_cli_culprit_from_a_plugin_exits_1(tmp_path) -> None:
    from caffe2tf.backend import registry

    plugin = tmp_path / "bad_interp.py"
    plugin.write_text(
        "import keras\nfrom caffe2tf.backend.registry import translator\n\n"
        "@translator('Interp', override=True)\ndef interp(node, inputs, ctx):\n"
        "    h, w = ctx.out_shapes(node)[0][2:]\n"
        "    return [keras.layers.Resizing(h, w, name=ctx.layer_name(node))(inputs[0])]\n")
    d = SHARED_REFERENCE / "interp"
    try:
        res = _run(str(d / "net.prototxt"), str(d / "weights.caffemodel"), "--reference", str(d / "reference.h5"),
                   "--plugin", str(plugin), "--html", str(tmp_path / "r.html"))
    finally:
        registry.unregister("Interp")
    assert res.exit_code == 1, res.output
    assert res.output.startswith("FIRST DIVERGENCE: layer `zoom` (Interp, 7x9 -> 49x65): max rel error")
    assert (tmp_path / "r.html").read_text().count("culprit-mark") == 1


@pytest.mark.parametrize("extra,message", [
    (["--reference", "missing.h5"], "reference file not found"),
    (["--caffe"], "pycaffe is not importable"),
    (["--builtin", "--reference", "x.h5"], "at most one of"),
    (["--builtin", "--input", "x.npy", "--mean", "1,2,3"], "apply to images"),
    (["--builtin", "--resize", "12"], "is not H,W"),
    (["--builtin", "--tolerance", "-1"], "must be > 0"),
])
def test_cli_bad_input_exits_2(extra: list[str], message: str, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "caffe", None)
    d = SHARED_REFERENCE / "conv_basic"
    res = _run(str(d / "net.prototxt"), str(d / "weights.caffemodel"), *extra)
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_cli_reference_with_input_flags_exits_2(tmp_path) -> None:
    d = SHARED_REFERENCE / "conv_basic"
    res = _run(str(d / "net.prototxt"), str(d / "weights.caffemodel"), "--reference", str(d / "reference.h5"),
               "--input", "random")
    assert res.exit_code == 2 and "cannot be used with --reference" in res.output


def test_cli_defaults_to_pycaffe_when_importable(fake_caffe) -> None:
    d = SHARED_REFERENCE / "in_place_chain"
    res = _run(str(d / "net.prototxt"), str(d / "weights.caffemodel"), "--seed", "2")
    assert res.exit_code == 0, res.output
    assert "reference: live Caffe (pycaffe 1.0.0-fake)" in res.output
