"""`caffe2tf convert`: output directory contents, atomicity, --force, --verify, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from caffe2tf.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mini_pspnet"
REF = ROOT.parent / "shared" / "caffe_reference"


def test_conversion_dir_contents(mini_model_dir):
    assert (mini_model_dir / "model.keras").is_file()
    assert (mini_model_dir / "saved_model" / "saved_model.pb").is_file()
    rec = json.loads((mini_model_dir / "conversion.json").read_text())
    assert rec["format"] == "caffe2tf-conversion/1"
    assert rec["inputs"][0]["caffe_shape"] == [1, 3, 113, 113]
    assert rec["inputs"][0]["keras_shape"] == [1, 113, 113, 3]
    assert rec["outputs"][0]["blob"] == "conv5_interp"
    names = {l["name"]: l for l in rec["layers"]}
    assert names["conv1/bn"]["folded_into"] == "conv1"
    assert names["conv5"]["keras_layers"], "every surviving layer maps to Keras layers"
    assert rec["folds"]["conv4"] == ["conv4/bn"]


def test_saved_model_and_keras_agree(mini_model_dir):
    import tensorflow as tf

    from caffe2tf.model_dir.converted import ConvertedModel

    m = ConvertedModel.load(mini_model_dir)
    x = np.random.default_rng(0).normal(scale=30, size=(1, 113, 113, 3)).astype(np.float32)
    keras_out = m.predict(x)["conv5_interp"]
    sm = tf.saved_model.load(str(mini_model_dir / "saved_model"))
    out = sm.signatures["serving_default"](tf.constant(x))
    sm_out = np.asarray(list(out.values())[0])
    np.testing.assert_allclose(sm_out, keras_out, rtol=0, atol=1e-5 * np.abs(keras_out).max())


def test_refuses_existing_output_and_force_replaces(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    args = ["convert", str(REF / "conv_basic" / "net.prototxt"), str(REF / "conv_basic" / "weights.caffemodel"),
            "-o", str(out), "--no-saved-model"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and "--force" in res.output
    assert (out / "keep.txt").exists()
    res = CliRunner().invoke(cli, args + ["--force"])
    assert res.exit_code == 0, res.output
    assert not (out / "keep.txt").exists() and (out / "model.keras").exists()


def test_bad_weights_leave_no_partial_output(tmp_path):
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\x0a\x05ab")  # truncated
    out = tmp_path / "never"
    res = CliRunner().invoke(cli, ["convert", str(REF / "conv_basic" / "net.prototxt"), str(bad), "-o", str(out)])
    assert res.exit_code == 2
    assert len([l for l in res.output.splitlines() if l.strip()]) == 1
    assert str(bad) in res.output
    assert not out.exists()
    assert not any(p.name.startswith(".never") for p in tmp_path.iterdir())


def test_verify_ok_and_report_written(tmp_path):
    out = tmp_path / "v"
    res = CliRunner().invoke(cli, ["convert", str(REF / "pool_ave_pad" / "net.prototxt"),
                                   str(REF / "pool_ave_pad" / "weights.caffemodel"), "-o", str(out),
                                   "--verify", "--no-saved-model"])
    assert res.exit_code == 0, res.output
    assert "OK: all" in res.output
    assert (out / "verification.html").is_file()
    assert json.loads((out / "verification.json").read_text())


def test_nchw_input_layout(tmp_path):
    from caffe2tf.pipeline import convert
    from caffe2tf.model_dir.converted import ConvertedModel
    from caffe2tf.verification.reference_file import read_reference

    case = REF / "inner_product_after_conv"
    convert(case / "net.prototxt", case / "weights.caffemodel", tmp_path / "m", input_layout="nchw",
            save_saved_model=False)
    m = ConvertedModel.load(tmp_path / "m")
    ref = read_reference(case / "reference.h5")
    x = list(ref.inputs.values())[0]
    got = m.predict(x)["prob"]
    want = ref.layer("prob").outputs[0].array
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_default_output_beside_the_prototxt_named_after_the_net(tmp_path):
    """`caffe2tf convert NET WEIGHTS` as the tool is introduced: no -o needed."""
    net = tmp_path / "models" / "deploy.prototxt"
    net.parent.mkdir()
    net.write_text('name: "tiny conv"\n' + (REF / "conv_basic" / "net.prototxt").read_text())
    name = "tiny_conv"
    args = ["convert", str(net), str(REF / "conv_basic" / "weights.caffemodel"), "--no-saved-model"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = net.parent / f"{name}_tf"
    assert (out / "model.keras").is_file() and str(out) in res.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "--force" in again.output and str(out) in again.output
    assert CliRunner().invoke(cli, args + ["--force"]).exit_code == 0


def test_default_output_name_is_sanitised(tmp_path):
    from caffe2tf.pipeline import default_output_dir

    assert default_output_dir(tmp_path / "a.prototxt", "VGG/16 layers") == tmp_path / "VGG_16_layers_tf"
    assert default_output_dir(tmp_path / "a.prototxt", "") == tmp_path / "a_tf"
    assert default_output_dir(tmp_path / "a.prototxt", "../..") == tmp_path / "a_tf"
