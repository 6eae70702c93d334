"""Which TFLite runtime runs our flatbuffers: LiteRT's interpreter when ``ai_edge_litert`` is
installed (the ``app`` extra has it), TensorFlow's deprecated one only as the fallback."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import tensorflow as tf

from caffe2tf.export.interpreter import TFLiteRunner


def _flatbuffer() -> bytes:
    class Double(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32, name="x")])
        def serving_default(self, x):
            return {"y": 2.0 * x}

    m = Double()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.serving_default.get_concrete_function()], m)
    return conv.convert()


def test_litert_runs_the_model_when_installed() -> None:
    pytest.importorskip("ai_edge_litert.interpreter")
    runner = TFLiteRunner(_flatbuffer(), threads=1)
    assert type(runner.interpreter).__module__.startswith("ai_edge_litert"), type(runner.interpreter)
    out = runner({runner.input_names[0]: np.array([[1, 2, 3]], np.float32)})
    np.testing.assert_array_equal(next(iter(out.values())), [[2, 4, 6]])  # doubling small ints is exact anywhere


def test_tensorflow_interpreter_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import now raises ImportError
    runner = TFLiteRunner(_flatbuffer(), threads=1)
    assert type(runner.interpreter).__module__.startswith("tensorflow"), type(runner.interpreter)
    out = runner({runner.input_names[0]: np.array([[1, 2, 3]], np.float32)})
    np.testing.assert_array_equal(next(iter(out.values())), [[2, 4, 6]])
