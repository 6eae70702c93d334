"""The REST API in-process (Starlette TestClient): TF Serving's paths and JSON shapes,
:segment in every output form, and every error case with its status."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from serving_helpers import encode

NAME = "mini_pspnet"
PREDICT = f"/v1/models/{NAME}:predict"
SEGMENT = f"/v1/models/{NAME}:segment"


def _error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"]
    assert "\n" not in doc["error"]
    return doc["error"]


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 50, (n, 113, 113, 3)).astype(np.float32)


# -- status and metadata --------------------------------------------------------------------------
def test_status(client):
    r = client.get(f"/v1/models/{NAME}")
    assert r.status_code == 200
    assert r.json() == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                  "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.get(f"/v1/models/{NAME}/versions/1").json() == r.json()


def test_metadata_is_tf_serving_shaped(client):
    r = client.get(f"/v1/models/{NAME}/metadata")
    assert r.status_code == 200
    doc = r.json()
    assert doc["model_spec"] == {"name": NAME, "signature_name": "", "version": "1"}
    sig = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    (in_name, inp), = sig["inputs"].items()
    assert in_name == "data" and inp["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in inp["tensor_shape"]["dim"]] == ["-1", "113", "113", "3"]
    assert inp["name"].endswith(":0")
    (out_name, out), = sig["outputs"].items()
    assert out_name == "output_0"
    assert [d["size"] for d in out["tensor_shape"]["dim"]] == ["-1", "113", "113", "10"]


# -- predict --------------------------------------------------------------------------------------
def test_predict_row_format_equals_saved_model(client, saved_model_fn):
    x = _inputs(2)
    r = client.post(PREDICT, content=json.dumps({"instances": x.tolist()}))
    assert r.status_code == 200, r.text[:300]
    assert "model;dur=" in r.headers["server-timing"]
    got = np.asarray(r.json()["predictions"], dtype=np.float32)
    np.testing.assert_array_equal(got, saved_model_fn(x))


def test_predict_row_format_named_instances(client, saved_model_fn):
    x = _inputs(1, seed=1)
    r = client.post(PREDICT, json={"signature_name": "serving_default", "instances": [{"data": x[0].tolist()}]})
    assert r.status_code == 200, r.text[:300]
    np.testing.assert_array_equal(np.asarray(r.json()["predictions"], np.float32), saved_model_fn(x))


@pytest.mark.parametrize("named", [False, True], ids=["bare", "named"])
def test_predict_columnar_format_equals_saved_model(client, saved_model_fn, named):
    x = _inputs(2, seed=2)
    body = {"inputs": {"data": x.tolist()} if named else x.tolist()}
    r = client.post(PREDICT, json=body)
    assert r.status_code == 200, r.text[:300]
    assert set(r.json()) == {"outputs"}
    np.testing.assert_array_equal(np.asarray(r.json()["outputs"], np.float32), saved_model_fn(x))


def test_predict_versioned_path(client):
    r = client.post(f"/v1/models/{NAME}/versions/1:predict", json={"instances": _inputs(1).tolist()})
    assert r.status_code == 200


@pytest.mark.parametrize("body, fragment", [
    (b"{", "JSON parse error"),
    (b"", "empty"),
    (b"[1, 2]", "JSON object"),
    (b'{"instances": [[1, 2]], "inputs": [[1]]}', "exactly one of"),
    (b'{"foo": 1}', "exactly one of"),
    (b'{"instances": []}', "non-empty"),
    (b'{"instances": [[1, 2, 3]]}', "must have shape [-1, 113, 113, 3]"),
    (b'{"inputs": [[[1, 2], [3]]]}', "rectangular"),
    (b'{"instances": ["a picture"]}', "numbers"),
    (b'{"instances": [{"image": 1}]}', "no value for input 'data'"),
    (b'{"signature_name": "nope", "instances": [1]}', "'nope' not found"),
    (b'{"inputs": {"data": [1], "other": [2]}}', "unknown input"),
])
def test_predict_bad_requests_answer_400(client, body, fragment):
    assert fragment in _error(client.post(PREDICT, content=body), 400)


def test_predict_too_many_instances(client):
    body = json.dumps({"instances": [[0]] * 9})
    assert "at most 8" in _error(client.post(PREDICT, content=body), 400)


def test_unknown_model_name_is_404(client):
    msg = _error(client.post("/v1/models/resnet:predict", json={"instances": [1]}), 404)
    assert msg == "Servable not found for request: Latest(resnet)"
    _error(client.get("/v1/models/resnet"), 404)
    _error(client.get(f"/v1/models/{NAME}/versions/7"), 404)


def test_unknown_paths_and_methods(client):
    assert "Malformed request" in _error(client.get("/v2/nothing"), 404)
    assert "Malformed request" in _error(client.post(f"/v1/models/{NAME}:explode", content=b"{}"), 404)
    _error(client.get(PREDICT), 405)
    _error(client.post(f"/v1/models/{NAME}", content=b"{}"), 405)
    assert "predict" in _error(client.post(f"/v1/models/{NAME}:classify", content=b"{}"), 400)


def test_oversized_body_is_413(client):
    big = b"[" + b"0," * (1_100_000) + b"0]"  # 2.2 MB > the 2 MiB limit of this client's app
    msg = _error(client.post(PREDICT, content=big), 413)
    assert "limit" in msg

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * 65536

    _error(client.post(PREDICT, content=chunks()), 413)


# -- segment --------------------------------------------------------------------------------------
def _direct_labels(served_model, image: np.ndarray) -> np.ndarray:
    """What `caffe2tf segment`'s shared protocol gives for the image, called directly."""
    from caffe2tf.segmentation.preprocess import Preprocessing
    from caffe2tf.segmentation.protocol import segment_image

    def logits(batch):
        return served_model.run({"data": batch})["output_0"]

    pre = Preprocessing.from_rgb((123.68, 116.779, 103.939), scale=1.0, bgr=True)
    return segment_image(image, logits, crop_size=(113, 113), num_classes=10, base_size=113,
                         preprocessing=pre).labels


def test_segment_json(client, room_jpeg):
    r = client.post(SEGMENT, content=room_jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text[:300]
    doc = r.json()
    assert (doc["width"], doc["height"]) == (480, 360)
    assert doc["classes"], "no classes found"
    assert abs(sum(c["share"] for c in doc["classes"]) - 1) < 1e-4
    shares = [c["share"] for c in doc["classes"]]
    assert shares == sorted(shares, reverse=True)
    assert all(c["color"].startswith("#") and len(c["color"]) == 7 for c in doc["classes"])
    assert doc["timing_ms"]["model"] > 0 and doc["timing_ms"]["total"] >= doc["timing_ms"]["model"]
    assert "overlay_png" not in doc


def test_segment_label_png_equals_shared_protocol(client, served_model, room_jpeg):
    r = client.post(SEGMENT + "?output=labels", content=room_jpeg)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(r.content))
    assert im.mode == "L" and im.size == (480, 360)
    labels = np.asarray(im)
    decoded = np.asarray(Image.open(io.BytesIO(room_jpeg)).convert("RGB"))
    np.testing.assert_array_equal(labels, _direct_labels(served_model, decoded))


def test_segment_overlay_png_multipart(client, served_model, room_png, room_photo):
    from caffe2tf.segmentation.classes import make_palette
    from caffe2tf.segmentation.visualize import overlay

    r = client.post(SEGMENT + "?output=overlay", files={"image": ("room.png", room_png, "image/png")})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(r.content)))
    assert got.shape == (360, 480, 3)
    want = overlay(room_photo, _direct_labels(served_model, room_photo), make_palette(10), alpha=0.5,
                   ignore_index=None)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("accept, kind", [
    ("image/png", "labels"), ("application/json", "json"), ("image/png;content=overlay", "overlay"),
    ("text/html, application/json;q=0.9, image/png;q=0.5", "json"), (None, "json")])
def test_segment_accept_header(client, room_jpeg, accept, kind):
    headers = {"Accept": accept} if accept else {}
    r = client.post(SEGMENT, content=room_jpeg, headers=headers)
    assert r.status_code == 200
    if kind == "json":
        assert r.json()["classes"]
    else:
        assert Image.open(io.BytesIO(r.content)).mode == ("L" if kind == "labels" else "RGB")


def test_segment_json_with_overlay_for_the_page(client, room_jpeg):
    import base64

    r = client.post(SEGMENT + "?output=json&include=overlay", content=room_jpeg)
    png = base64.b64decode(r.json()["overlay_png"])
    assert Image.open(io.BytesIO(png)).size == (480, 360)


def test_segment_large_photo_is_shrunk(client, room_photo):
    big = np.asarray(Image.fromarray(room_photo).resize((1600, 1200)))
    r = client.post(SEGMENT + "?output=labels", content=encode(big))
    assert r.status_code == 200
    assert Image.open(io.BytesIO(r.content)).size == (1024, 768)
    assert r.headers["x-caffe2tf-resized-from"] == "1600x1200"


@pytest.mark.parametrize("body, fragment", [
    (b"", "empty body"),
    (b"this is not an image at all", "not an image"),
    (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00"
     b"\x01\x00\x01\x00\x00\x02\x02D\x01\x00;", "unsupported image format GIF"),
])
def test_segment_not_an_image_is_400(client, body, fragment):
    assert fragment in _error(client.post(SEGMENT, content=body), 400)


def test_segment_truncated_jpeg_is_400(client, room_jpeg):
    assert "not a readable image" in _error(client.post(SEGMENT, content=room_jpeg[: len(room_jpeg) // 3]), 400)


def test_segment_bad_parameters_are_400(client, room_jpeg):
    assert "output" in _error(client.post(SEGMENT + "?output=svg", content=room_jpeg), 400)
    assert "alpha" in _error(client.post(SEGMENT + "?output=overlay&alpha=3", content=room_jpeg), 400)
    _error(client.post(SEGMENT, content=b"--x\r\nnot multipart",
                       headers={"Content-Type": "multipart/form-data; boundary=zzz"}), 400)
    _error(client.post(SEGMENT, data={"field": "no file"}, files={}), 400)


def test_segment_too_many_pixels_is_413(client):
    huge = Image.new("RGB", (2500, 2000), (120, 110, 100))  # 5 MP > this app's 4 MP limit
    buf = io.BytesIO()
    huge.save(buf, "PNG")
    assert "pixels" in _error(client.post(SEGMENT, content=buf.getvalue()), 413)


def test_segment_on_a_non_segmentation_service(served_model, room_jpeg):
    from starlette.testclient import TestClient

    from caffe2tf.serving.app import create_app

    with TestClient(create_app(served_model, segmentation=False)) as c:
        assert "not a segmentation model" in _error(c.post(SEGMENT, content=room_jpeg), 400)
        assert c.get("/healthz").json()["model"]["segmentation"] is None


# -- page, health, metrics ------------------------------------------------------------------------
def test_page_and_static_files_are_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for path in ("/static/style.css", "/static/app.js"):
        assert client.get(path).status_code == 200
    for text in (r.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text and "https://" not in text, "the page must not load external URLs"


def test_healthz(client):
    doc = client.get("/healthz").json()
    assert doc["status"] == "ok"
    assert doc["model"]["name"] == NAME and doc["model"]["segmentation"]["num_classes"] == 10
    assert doc["pool"] == {"workers": 1, "queue_size": 4, "running": 0, "queue_depth": 0}


def test_metrics_prometheus_text(client):
    client.get(f"/v1/models/{NAME}")
    client.post(PREDICT, content=b"{")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'caffe2tf_http_requests_total{endpoint="status",method="GET",status="200"}' in text
    assert 'caffe2tf_http_requests_total{endpoint="predict",method="POST",status="400"}' in text
    assert "caffe2tf_http_request_duration_seconds_bucket{" in text
    assert "caffe2tf_queue_depth 0.0" in text
    assert "caffe2tf_in_flight 0.0" in text


def test_nchw_model_segments_like_the_nhwc_one(tmp_path, client, room_png):
    """A model converted with --input-layout nchw takes NCHW :predict inputs, and :segment
    transposes for it: the label map is the same."""
    from starlette.testclient import TestClient

    from caffe2tf.pipeline import Preprocessing, convert
    from caffe2tf.serving.app import create_app
    from caffe2tf.model_dir.served import ServedModel
    from serving_helpers import EXAMPLE, PSPNET_MEAN_BGR

    out = tmp_path / "nchw"
    convert(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel", out, input_layout="nchw",
            preprocessing=Preprocessing(mean=PSPNET_MEAN_BGR))
    with TestClient(create_app(ServedModel.load(out))) as c:
        assert c.get("/healthz").json()["model"]["inputs"]["data"] == [None, 3, 113, 113]
        r = c.post(PREDICT, json={"instances": np.zeros((1, 3, 113, 113)).tolist()})
        assert r.status_code == 200
        assert "[-1, 3, 113, 113]" in _error(c.post(PREDICT, json={"instances": _inputs(1).tolist()}), 400)
        got = c.post(SEGMENT + "?output=labels", content=room_png)
    want = client.post(SEGMENT + "?output=labels", content=room_png)
    assert got.status_code == want.status_code == 200
    # Two graphs (the NCHW one starts with a transpose) over the same weights: kernels may
    # round differently, so a label may flip only where two classes nearly tie.
    agree = np.mean(np.asarray(Image.open(io.BytesIO(got.content))) ==
                    np.asarray(Image.open(io.BytesIO(want.content))))
    assert agree >= 0.999, agree
