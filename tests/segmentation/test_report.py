"""Terminal, JSON and Markdown evaluation reports."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from caffe2tf.segmentation.metrics import ConfusionMatrix
from caffe2tf.segmentation.report import format_table, write_json, write_markdown_report

NAMES = ["wall", "floor", "ceiling", "bed", "lamp"]


def confusion() -> ConfusionMatrix:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (50, 50))
    pred = np.where(rng.random((50, 50)) < 0.8, gt, 3)  # class 3 predicted only; 4 absent
    cm = ConfusionMatrix(5)
    cm.update(pred, gt)
    return cm


def test_table_lists_present_classes_only():
    m = confusion().compute()
    table = format_table(m, NAMES)
    assert f"{100 * m.mean_iou:6.2f}" in table
    assert "ceiling" in table and "bed" in table and "lamp" not in table
    assert "lamp" in format_table(m, NAMES, include_absent=True)
    assert "2500" in table  # pixels evaluated


def test_json_has_nulls_names_and_matrix(tmp_path):
    cm = confusion()
    path = write_json(cm.compute(), tmp_path / "m.json", NAMES, cm, extra={"model": "x"})
    data = json.loads(path.read_text())
    assert data["iou"][4] is None and data["class_names"] == NAMES and data["model"] == "x"
    assert np.array(data["confusion_matrix"]).sum() == 2500


def test_markdown_report_with_charts(tmp_path):
    path = write_markdown_report(confusion(), tmp_path / "rep", NAMES, title="T",
                                 notes={"model": "tiny"})
    text = path.read_text()
    assert text.startswith("# T") and "**model**: tiny" in text
    assert "![Per-class IoU](iou.png)" in text and "| 3 | bed |" in text
    assert "| 4 | lamp |" not in text
    for name in ("iou.png", "confusion.png"):
        with Image.open(tmp_path / "rep" / name) as im:
            assert im.width > 100 and im.height > 100
    assert (tmp_path / "rep" / "metrics.json").is_file()
