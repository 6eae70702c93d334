"""`caffe2tf detect` end to end on the fake detector: files written, JSON content, folders,
progress, and one-line errors with exit 2 and no output for bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from detection_helpers import without_detection_layer

from caffe2tf.cli import cli


def _photo(path: Path, size=(240, 320)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


def run(*args: str):  # noqa: ANN202
    return CliRunner().invoke(cli, ["detect", *args], catch_exceptions=False)


def test_detect_writes_png_and_json(fake_dir, tmp_path):
    photo = _photo(tmp_path / "street.jpg")
    out = tmp_path / "out"
    r = run(str(fake_dir), str(photo), "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "street.jpg: 2 detection(s): cat 0.950" in r.output
    doc = json.loads((out / "street_detections.json").read_text())
    assert doc["width"] == 320 and doc["height"] == 240 and doc["threshold"] == 0.5
    assert [d["name"] for d in doc["detections"]] == ["cat", "dog"]
    assert doc["detections"][0]["box"] == {"xmin": 32.0, "ymin": 48.0, "xmax": 160.0, "ymax": 144.0}
    assert doc["detections"][1]["box"]["xmax"] == 320.0  # clipped; the raw value kept beside it
    assert doc["detections"][1]["box_normalized"]["xmax"] == pytest.approx(1.2, abs=1e-6)
    boxes = np.asarray(Image.open(out / "street_boxes.png"))
    assert boxes.shape == (240, 320, 3)
    assert not np.array_equal(boxes, np.asarray(Image.open(photo).convert("RGB")))


def test_threshold_and_folders(fake_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.jpg"):
        _photo(photos / name, (50, 70))
    (photos / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    r = run(str(fake_dir), str(photos), "-o", str(out), "--threshold", "0.0")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["a_boxes.png", "a_detections.json", "b_boxes.png",
                                                     "b_detections.json"]
    assert len(json.loads((out / "a_detections.json").read_text())["detections"]) == 4
    assert "wrote 2 result(s)" in r.output


@pytest.mark.parametrize("problem", ["unreadable", "missing", "not_detection", "bad_threshold"])
def test_bad_input_one_line_exit_2_nothing_written(problem, fake_dir, tmp_path):
    good = _photo(tmp_path / "good.jpg")
    out = tmp_path / "out"
    model, images, extra = str(fake_dir), [str(good)], []
    if problem == "unreadable":
        bad = tmp_path / "broken.jpg"
        bad.write_bytes(b"\xff\xd8 not really a jpeg")
        images.append(str(bad))
    elif problem == "missing":
        images.append(str(tmp_path / "nope.jpg"))
    elif problem == "not_detection":
        model = str(without_detection_layer(fake_dir, tmp_path / "plain"))
    else:
        extra = ["--threshold", "1.5"]
    r = CliRunner().invoke(cli, ["detect", model, *images, "-o", str(out), *extra])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    if problem != "bad_threshold":
        assert len(lines) == 1 and lines[0].startswith("caffe2tf: error: "), r.output
    want = {"unreadable": "broken.jpg: not a readable image", "missing": "nope.jpg: no such image",
            "not_detection": "does not detect objects", "bad_threshold": "1.5"}[problem]
    assert want in r.output
    assert not out.exists()
