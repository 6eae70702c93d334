"""``:detect`` and ``:predict`` on a detection model, in-process (the fake detector of
tests/detection/detection_helpers.py: fixed rows, so every number below is known)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from detection_helpers import FAKE_INPUT, FAKE_ROWS
from PIL import Image
from serving_helpers import encode

NAME = "fake_ssd"
DETECT = f"/v1/models/{NAME}:detect"


def _photo(h: int = 240, w: int = 320) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_healthz_says_detection(det_client):
    model = det_client.get("/healthz").json()["model"]
    assert model["kind"] == "detection" and model["segmentation"] is None
    det = model["detection"]
    assert det["class_names"] == ["background", "cat", "dog"] and det["input_size"] == list(FAKE_INPUT)
    assert det["layer"] == "detection_out" and det["threshold"] == 0.5


def test_detect_json_raw_and_multipart(det_client):
    jpeg = encode(_photo(), "JPEG")
    raw = det_client.post(DETECT, content=jpeg, headers={"Content-Type": "image/jpeg"})
    multi = det_client.post(DETECT, files={"image": ("p.jpg", jpeg, "image/jpeg")})
    assert raw.status_code == multi.status_code == 200, raw.text
    for r in (raw, multi):
        doc = r.json()
        assert doc["width"] == 320 and doc["height"] == 240 and doc["rows"] == len(FAKE_ROWS)
        assert [(d["name"], d["score"]) for d in doc["detections"]] == [("cat", pytest.approx(0.95)),
                                                                        ("dog", pytest.approx(0.7))]
        assert doc["detections"][0]["box"] == {"xmin": 32.0, "ymin": 48.0, "xmax": 160.0, "ymax": 144.0}
        assert doc["detections"][0]["color"].startswith("#")
        assert "model;dur=" in r.headers["Server-Timing"]
    low = det_client.post(DETECT + "?threshold=0.01", content=jpeg).json()
    assert len(low["detections"]) == 4 and low["threshold"] == 0.01


@pytest.mark.parametrize("query, accept", [("?format=png", None), ("", "image/png"),
                                           ("", "application/json;q=0.5, image/png")])
def test_detect_png(det_client, query, accept):
    photo = _photo()
    r = det_client.post(DETECT + query, content=encode(photo, "PNG"),
                        headers={"Accept": accept} if accept else {})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    drawn = np.asarray(Image.open(io.BytesIO(r.content)))
    assert drawn.shape == photo.shape
    changed = (drawn != photo).any(axis=2)
    assert changed[48:144, 32].all()          # the cat's left edge is drawn
    assert not changed[200:, 200:300].any()   # where no box is: the photo as sent (PNG is lossless)


def test_detect_include_image(det_client):
    doc = det_client.post(DETECT + "?include=image", content=encode(_photo(), "PNG")).json()
    import base64

    assert Image.open(io.BytesIO(base64.b64decode(doc["image_png"]))).size == (320, 240)


@pytest.mark.parametrize("query, body, status, text", [
    ("?format=gif", None, 400, "format 'gif'"),
    ("?threshold=2", None, 400, "threshold '2'"),
    ("", b"", 400, "empty body"),
    ("", b"not an image", 400, "not an image"),
])
def test_detect_errors(det_client, query, body, status, text):
    r = det_client.post(DETECT + query, content=encode(_photo(), "PNG") if body is None else body)
    assert r.status_code == status and text in r.json()["error"]


def test_detect_on_a_segmentation_model_and_segment_on_a_detector(det_client, client):
    r = client.post("/v1/models/mini_pspnet:detect", content=b"x")
    assert r.status_code == 400 and "not a detection model" in r.json()["error"]
    assert client.get("/healthz").json()["model"]["kind"] == "segmentation"
    r = det_client.post(f"/v1/models/{NAME}:segment", content=encode(_photo(), "PNG"))
    assert r.status_code == 400 and "not a segmentation model" in r.json()["error"]


def test_predict_returns_the_rows(det_client):
    x = np.zeros((1, *FAKE_INPUT, 3), np.float32)
    r = det_client.post(f"/v1/models/{NAME}:predict", content=json.dumps({"instances": x.tolist()}))
    assert r.status_code == 200, r.text
    out = np.asarray(r.json()["predictions"], np.float32)
    assert out.shape == (1, len(FAKE_ROWS), 7, 1)  # the converted model's NHWC [1, rows, 7, 1]
    # the same SavedModel in this process; rows are a bias plus zero products: 1e-6 is generous
    np.testing.assert_allclose(out[0, :, :, 0], FAKE_ROWS, atol=1e-6)


def test_metrics_count_detect(det_client):
    det_client.post(DETECT, content=encode(_photo(), "PNG"))
    text = det_client.get("/metrics").text
    assert 'caffe2tf_http_requests_total{endpoint="detect",method="POST",status="200"}' in text
    assert 'caffe2tf_model_duration_seconds_count{endpoint="detect"}' in text


def test_predict_and_detect_with_res10(res10_model_dir):
    """:predict answers res10_ssd_face's rows (their number depends on the input) and :detect
    finds the astronaut's face, in-process."""
    from detection_helpers import astronaut, res10_reference
    from starlette.testclient import TestClient

    from caffe2tf.serving.app import create_app
    from caffe2tf.model_dir.served import ServedModel

    x, caffe_rows = res10_reference()
    model = ServedModel.load(res10_model_dir, name="res10")
    with TestClient(create_app(model), raise_server_exceptions=False) as c:
        body = {"inputs": {"data": x.transpose(0, 2, 3, 1).tolist()}}
        r = c.post("/v1/models/res10:predict", content=json.dumps(body))
        assert r.status_code == 200, r.text[:300]
        rows = np.asarray(r.json()["outputs"], np.float32)
        assert rows.shape == (1, len(caffe_rows), 7, 1)
        # JSON carries float32 exactly; the rows are the SavedModel's, held to the DetectionOutput
        # tolerance against Caffe (1e-5) because another run of the graph may round differently
        np.testing.assert_allclose(rows[0, :, :, 0], caffe_rows, atol=1e-5, rtol=0)
        # an all-zero input gives another number of rows: the output's length is dynamic
        zero = c.post("/v1/models/res10:predict",
                      content=json.dumps({"instances": np.zeros((1, 300, 300, 3)).tolist()}))
        assert zero.status_code == 200
        assert np.asarray(zero.json()["predictions"]).shape[1] != len(caffe_rows)
        doc = c.post("/v1/models/res10:detect", content=encode(astronaut(), "PNG")).json()
        assert [d["name"] for d in doc["detections"]] == ["face"]
        face = doc["detections"][0]
        assert face["score"] > 0.99
        np.testing.assert_allclose([face["box_normalized"][k] for k in ("xmin", "ymin", "xmax", "ymax")],
                                   caffe_rows[0, 3:7], atol=1 / 300)
        assert c.get("/healthz").json()["model"]["kind"] == "detection"
        meta = c.get("/v1/models/res10/metadata").json()["metadata"]["signature_def"]["signature_def"]
        dims = [d["size"] for d in meta["serving_default"]["outputs"]["output_0"]["tensor_shape"]["dim"]]
        assert dims[1] == "-1" and dims[2:] == ["7", "1"]
