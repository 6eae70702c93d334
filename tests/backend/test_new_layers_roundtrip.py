"""The issue-14 custom layers survive ``.keras`` save/reload (config and numbers), and a
converted DetectionOutput net serves through the SavedModel ``serving_default`` signature
and converts to TFLite builtin ops.

Tolerances: a reloaded model runs the same TensorFlow kernels in the same process, but it is
a second execution path (rebuilt graph, possibly other kernel choices), so results are
compared at 1e-6 relative (float32 rounding of reordered reductions), never bitwise.
DetectionOutput rows are compared at the README's 1e-5.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import caffe2tf.backend.layers  # noqa: F401  (registers every caffe2tf layer)
from caffe2tf.backend.build import build_keras_model
from caffe2tf.passes import run_passes
from caffe2tf.frontend.reader import load_net
from caffe2tf.backend import layout
from caffe2tf.backend.layers.segnet import CaffeBatchStatBN
from caffe2tf.backend.layers.ssd import CaffeConstant, CaffeDetectionOutput, CaffeNormalize
from caffe2tf.backend.layers.unpooling import CaffeMaxPoolWithMask, CaffeMaxUnpool
from caffe2tf.verification.reference_file import read_reference

RELOAD_RTOL = 1e-6
ROWS_ATOL = 1e-5
CASES = Path(__file__).resolve().parents[3] / "shared" / "caffe_reference"

f32 = np.float32


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-6))


def _roundtrip(model: keras.Model, feeds, tmp_path: Path):
    before = model(feeds)
    path = tmp_path / "m.keras"
    model.save(path)
    after = keras.models.load_model(path, compile=False)(feeds)
    before = before if isinstance(before, (list, tuple)) else [before]
    after = after if isinstance(after, (list, tuple)) else [after]
    for b, a in zip(before, after):
        assert _rel(a, b) <= RELOAD_RTOL
    return [np.asarray(a) for a in after]


def _config_roundtrip(layer: keras.layers.Layer) -> None:
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


def _model(inputs, outputs) -> keras.Model:
    return keras.Model(inputs, outputs)


def test_constant_roundtrip(tmp_path):
    x = keras.Input((4, 4, 2))
    layer = CaffeConstant((1, 2, 8))
    y = layer(x)
    value = np.arange(16, dtype=f32).reshape(1, 2, 8)
    layer.set_weights([value])
    _config_roundtrip(layer)
    (out,) = _roundtrip(_model(x, y), np.zeros((3, 4, 4, 2), f32), tmp_path)
    np.testing.assert_array_equal(out, value)  # a stored constant: no arithmetic at all


@pytest.mark.parametrize("across,shared", [(True, True), (False, False), (False, True)])
def test_normalize_roundtrip(tmp_path, across, shared):
    x = keras.Input((3, 5, 4))
    layer = CaffeNormalize(4, across_spatial=across, channel_shared=shared, eps=0.01)
    y = layer(x)
    layer.set_weights([np.array([2.0] if shared else [1, 2, 3, 4], f32)])
    _config_roundtrip(layer)
    _roundtrip(_model(x, y), np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(f32), tmp_path)


def test_max_pool_with_mask_and_unpool_roundtrip(tmp_path):
    x = keras.Input((7, 9, 3))
    pool = CaffeMaxPoolWithMask(3, 2, 0, (3, 4))
    values, mask = pool(x)
    unpool = CaffeMaxUnpool((7, 9))
    y = unpool([values, mask])
    _config_roundtrip(pool)
    _config_roundtrip(unpool)
    feeds = np.random.default_rng(1).normal(size=(2, 7, 9, 3)).astype(f32)
    _roundtrip(_model(x, [values, mask, y]), feeds, tmp_path)


def test_batch_stat_bn_roundtrip(tmp_path):
    x = keras.Input((4, 5, 3))
    layer = CaffeBatchStatBN(3)
    y = layer(x)
    layer.set_weights([np.array([1, 2, 3], f32), np.array([0.5, 0, -1], f32)])
    _config_roundtrip(layer)
    _roundtrip(_model(x, y), np.random.default_rng(2).normal(size=(2, 4, 5, 3)).astype(f32), tmp_path)


def test_detection_output_roundtrip(tmp_path):
    loc, conf, prior = keras.Input((16,)), keras.Input((8,)), keras.Input((2, 16), batch_size=1)
    layer = CaffeDetectionOutput(2, 4, nms_threshold=0.45, top_k=3, keep_top_k=2, eta=0.9,
                                 confidence_threshold=0.1, code_type="center_size")
    y = layer([loc, conf, prior])
    _config_roundtrip(layer)
    rng = np.random.default_rng(3)
    boxes = np.sort(rng.uniform(0, 1, (4, 2, 2)), axis=1).transpose(0, 2, 1).reshape(-1)
    feeds = [rng.normal(0, 0.2, (1, 16)).astype(f32), rng.uniform(0, 1, (1, 8)).astype(f32),
             np.stack([boxes, np.full(16, 0.1)])[None].astype(f32)]
    (rows,) = _roundtrip(_model([loc, conf, prior], y), feeds, tmp_path)
    assert rows.shape[0] == 1 and rows.shape[2:] == (7, 1)


def _converted(case: str, tmp_path: Path):
    case_dir = CASES / case
    graph = run_passes(load_net(case_dir / "net.prototxt", case_dir / "weights.caffemodel"))
    model = build_keras_model(graph).model
    ref = read_reference(case_dir / "reference.h5")
    feeds = {graph.values[v].blob: layout.nchw_to_keras(ref.inputs[graph.values[v].blob]) for v in graph.inputs}
    want = ref.layers[-1].outputs[0].array
    assert ref.layers[-1].type == "DetectionOutput"
    path = tmp_path / "saved_model"
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path, feeds, want


@pytest.mark.skipif(not (CASES / "detectionoutput_batch_mixed").is_dir(), reason="shared reference cases missing")
def test_detection_output_serves_and_converts_to_tflite_builtins(tmp_path):
    """Batch 2, only image 0 has detections (README): the SavedModel's serving_default and a
    TFLite model of builtin ops only (no Select TF ops) give Caffe's rows."""
    import tensorflow as tf

    path, feeds, want = _converted("detectionoutput_batch_mixed", tmp_path)
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    (rows,) = served(**{k: tf.constant(v) for k, v in feeds.items()}).values()
    rows = layout.keras_to_nchw(rows.numpy())
    assert rows.shape == want.shape
    assert np.max(np.abs(rows - want)) <= ROWS_ATOL

    converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    (lite,) = interpreter.get_signature_runner("serving_default")(**feeds).values()
    lite = layout.keras_to_nchw(np.asarray(lite))
    assert lite.shape == want.shape
    assert np.max(np.abs(lite - want)) <= ROWS_ATOL
