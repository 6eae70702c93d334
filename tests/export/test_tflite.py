"""TFLite export: float32 matches the SavedModel at the whole-network tolerance; quantized
variants run and report their error; ops that are not TFLite builtins are named by layer."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caffe2tf.export.tflite import (WHOLE_NETWORK_TOLERANCE, ExportError, TFLiteRunner, export_tflite,
                                    relative_error)


def _saved_model(model_dir: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir / "saved_model"))
    return loaded, loaded.signatures["serving_default"]


def test_float32_matches_saved_model(model_copy):
    report = export_tflite(model_copy)
    assert report.path == model_copy / "model.tflite" and report.path.is_file()
    assert report.exact is True and report.ok
    assert report.max_rel_error <= WHOLE_NETWORK_TOLERANCE
    assert report.argmax_agreement is not None and report.argmax_agreement > 0.999
    assert report.ops and all(not name.startswith("FlexDelegate") and name != "CUSTOM" for name in report.ops)

    # independently of the report: both on the same random input
    import tensorflow as tf

    _keep, sig = _saved_model(model_copy)
    x = np.random.default_rng(5).normal(0, 60, (1, 113, 113, 3)).astype(np.float32)
    ref = sig(data=tf.constant(x))["output_0"].numpy()
    got = TFLiteRunner(report.path.read_bytes())({"data": x})["output_0"]
    assert relative_error(ref, got)[1] <= WHOLE_NETWORK_TOLERANCE

    record = json.loads((model_copy / "conversion.json").read_text())
    entry = record["exports"]["tflite"]["model.tflite"]
    assert entry["exact"] is True and entry["quantize"] == "none" and entry["ok"] is True
    assert entry["max_rel_error"] == pytest.approx(report.max_rel_error)
    assert record["format"].startswith("caffe2tf-conversion/") and record["layers"], "record kept whole"
    assert not list(model_copy.glob(".*.tmp")), "no temporary files left behind"


@pytest.mark.parametrize("mode", ["dynamic", "int8"])
def test_quantized_export_runs_and_reports(model_copy, tmp_path, mode):
    kwargs = {}
    if mode == "int8":
        from PIL import Image

        from caffe2tf.segmentation.synthetic import synthetic_room

        calib = tmp_path / "calib"
        calib.mkdir()
        for i in range(4):
            Image.fromarray(synthetic_room((96, 128), seed=50 + i)[0]).save(calib / f"room{i}.jpg")
        kwargs = {"calibration_images": calib}
    report = export_tflite(model_copy, quantize=mode, output=model_copy / f"model_{mode}.tflite", **kwargs)
    assert report.path.is_file() and report.size_bytes == report.path.stat().st_size
    assert report.exact is None and report.tolerance is None and report.ok
    assert np.isfinite(report.max_rel_error) and report.max_rel_error > 0
    assert 0.0 <= report.argmax_agreement <= 1.0
    if mode == "int8":
        assert report.calibration == {"images": 4, "source": str(kwargs["calibration_images"])}
        assert report.size_bytes < 0.5 * report.saved_model_bytes
    lines = "\n".join(report.summary_lines())
    assert "no exactness is claimed" in lines and "max rel error" in lines
    entry = json.loads((model_copy / "conversion.json").read_text())["exports"]["tflite"][f"model_{mode}.tflite"]
    assert entry["quantize"] == mode and entry["exact"] is None


def _model_with_an_erf_layer(root: Path) -> Path:
    """A hand-made model directory whose Keras layer 'odd_erf' (Caffe layer 'odd') uses tf.math.erf."""
    import keras
    import tensorflow as tf

    inp = keras.Input(shape=(16, 16, 3), name="data")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inp)
    x = keras.layers.Lambda(tf.math.erf, name="odd_erf")(x)
    model = keras.Model(inp, x)
    out = root / "erf_model"
    out.mkdir()
    model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
    record = {"format": "caffe2tf-conversion/1", "name": "erf_net", "input_layout": "nhwc",
              "inputs": [{"blob": "data", "keras_shape": [1, 16, 16, 3]}],
              "outputs": [{"blob": "odd", "keras_shape": [1, 16, 16, 4]}],
              "preprocessing": None,
              "layers": [{"name": "conv1", "type": "Convolution", "keras_layers": ["conv1"]},
                         {"name": "odd", "type": "Erf", "keras_layers": ["odd_erf"]}]}
    (out / "conversion.json").write_text(json.dumps(record))
    return out


def test_unsupported_op_names_the_layer(tmp_path):
    model_dir = _model_with_an_erf_layer(tmp_path)
    with pytest.raises(ExportError) as info:
        export_tflite(model_dir)
    msg = str(info.value)
    assert "\n" not in msg
    assert "layer 'odd' (Erf, Keras layer 'odd_erf')" in msg
    assert "Erf" in msg and "not TFLite builtin" in msg and "--select-tf-ops" in msg
    assert not (model_dir / "model.tflite").exists()

    report = export_tflite(model_dir, select_tf_ops=True)  # only when the user asks
    assert report.select_tf_ops and report.path.is_file()
    assert "FlexErf" in report.ops
    if report.checked:  # a TensorFlow build whose TFLite interpreter links the Flex delegate
        assert report.exact is True
    else:  # TensorFlow's pip wheel does not: the report says so instead of claiming a match
        assert report.exact is None and "Flex delegate" in report.note
        assert "NOT CHECKED" in "\n".join(report.summary_lines())


def test_cli_export(model_copy):
    from click.testing import CliRunner

    from caffe2tf.cli import cli

    result = CliRunner().invoke(cli, ["export", str(model_copy), "--tflite"])
    assert result.exit_code == 0, result.output
    assert "max rel error" in result.output and "matches the SavedModel" in result.output
    assert (model_copy / "model.tflite").is_file()


def test_cli_errors_are_one_line(tmp_path):
    from click.testing import CliRunner

    from caffe2tf.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["export", str(tmp_path / "nowhere"), "--tflite"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "caffe2tf: error:" in result.output
    result = runner.invoke(cli, ["export", str(tmp_path)])
    assert result.exit_code == 2 and "--tflite" in result.output


def test_relative_error_never_hides_nan():
    ref = np.ones((2, 3), np.float32)
    got = ref.copy()
    got[0, 0] = np.nan
    assert relative_error(ref, got) == (float("inf"), float("inf"))
    assert relative_error(ref, ref) == (0.0, 0.0)
