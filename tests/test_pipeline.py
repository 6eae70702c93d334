"""``pipeline.lower`` is the one path from Caffe files to Keras for ``convert`` and ``diff``;
the whole-graph support check runs once per conversion."""
from __future__ import annotations

import json
from pathlib import Path

from caffe2tf import pipeline
from caffe2tf.backend import registry

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mini_pspnet"


def _count(monkeypatch, target, name):
    calls = []
    real = getattr(target, name)

    def counting(*a, **k):
        calls.append(a)
        return real(*a, **k)
    monkeypatch.setattr(target, name, counting)
    return calls


def test_convert_lowers_once_and_checks_support_once(tmp_path, monkeypatch):
    lowers = _count(monkeypatch, pipeline, "lower")
    checks = _count(monkeypatch, registry, "check_supported")
    result = pipeline.convert(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel", tmp_path / "m",
                              save_saved_model=False)
    assert len(lowers) == 1 and len(checks) == 1
    record = json.loads((tmp_path / "m" / "conversion.json").read_text())
    assert record["format"] == "caffe2tf-conversion/1" and record["name"] == result.graph.name
    assert set(result.timings) >= {"init", "read", "fold", "build", "save"}


def test_diff_uses_the_same_lower(monkeypatch):
    from caffe2tf.verification.diff import diff_net

    lowers = _count(monkeypatch, pipeline, "lower")
    report = diff_net(str(EXAMPLE / "deploy.prototxt"), str(EXAMPLE / "weights.caffemodel"))
    assert len(lowers) == 1 and lowers[0][2] is False  # diff compares the unfolded net by default
    assert report.ok
