"""`caffe2tf detect` with the real face detector: res10_ssd_face (OpenCV's SSD, real weights)
finds the astronaut's face where Caffe found it."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from detection_helpers import astronaut, res10_reference
from PIL import Image

from caffe2tf.cli import cli


def test_detect_draws_the_astronauts_face(res10_dir, tmp_path, artifacts_dir):
    _, caffe_rows = res10_reference()
    face = caffe_rows[0]
    assert face[1] == 1 and face[2] > 0.9999  # the case's README: the first row is the face
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut()).save(photo)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["detect", str(res10_dir), str(photo), "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "astronaut_detections.json").read_text())
    assert [d["name"] for d in doc["detections"]] == ["face"], doc["detections"]  # one face above 0.5
    det = doc["detections"][0]
    # the photo is the recorded input rounded to whole grey levels (<= 0.5 per pixel); the
    # score and box move far less than the tolerances below (one pixel of 300 for the box)
    assert det["score"] == pytest.approx(float(face[2]), abs=1e-3)
    got = [det["box_normalized"][k] for k in ("xmin", "ymin", "xmax", "ymax")]
    np.testing.assert_allclose(got, face[3:7], atol=1 / 300)
    np.testing.assert_allclose([det["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")], 300 * face[3:7],
                               atol=1.0)
    assert doc["model"]["rows"] > 100  # threshold 0.01 in the prototxt: Caffe writes 146 rows
    drawn = np.asarray(Image.open(out / "astronaut_boxes.png"))
    x0, y0, x1, y1 = (int(round(v)) for v in 300 * face[3:7])
    changed = (drawn != astronaut()).any(axis=2)
    assert changed[y0 + 5:y1 - 5, x0].all() and changed[y0 + 5:y1 - 5, x1 - 1].all()  # the box's sides
    assert not changed[y0 + 8:y1 - 8, x0 + 8:x1 - 8].any()                             # the face itself
    Image.fromarray(drawn).save(artifacts_dir / "detect_astronaut.png")


def test_rows_equal_caffes_on_the_recorded_input(res10_dir):
    """The setup's run on the exact recorded input gives Caffe's rows (DetectionOutput 1e-5)."""
    from caffe2tf.detection.setup import detection_setup
    from caffe2tf.model_dir.served import ServedModel

    x, caffe_rows = res10_reference()
    setup, why = detection_setup(ServedModel.load(res10_dir))
    assert setup is not None, why
    assert setup.class_names == ["background", "face"] and setup.num_classes == 2
    assert setup.background_label == 0 and setup.input_size == (300, 300)
    out = setup.signature.run({setup.input_name: np.ascontiguousarray(x.transpose(0, 2, 3, 1))})
    rows = out[setup.output_name]
    assert rows.shape == (1, len(caffe_rows), 7, 1)  # dynamic length: 146 rows here
    np.testing.assert_allclose(rows[0, :, :, 0], caffe_rows, atol=1e-5, rtol=0)
