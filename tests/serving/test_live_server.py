"""The service as a real process on a loopback socket (`caffe2tf serve MODEL --port 0`):
the REST API, :segment, every error case with its status, and that it keeps answering."""
from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from tolerances import assert_same_graph

NAME = "mini_pspnet"


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        yield c


def test_binds_loopback_by_default(live_server):
    assert live_server.url.startswith("http://127.0.0.1:")


def test_status_and_metadata(http):
    r = http.get(f"/v1/models/{NAME}")
    assert r.status_code == 200 and r.json()["model_version_status"][0]["state"] == "AVAILABLE"
    sig = http.get(f"/v1/models/{NAME}/metadata").json()["metadata"]["signature_def"]["signature_def"]
    assert "serving_default" in sig and "data" in sig["serving_default"]["inputs"]


def test_predict_both_formats_equal_saved_model(http, saved_model_fn):
    x = np.random.default_rng(3).normal(0, 40, (2, 113, 113, 3)).astype(np.float32)
    want = saved_model_fn(x)
    rows = http.post(f"/v1/models/{NAME}:predict", content=json.dumps({"instances": x.tolist()}))
    cols = http.post(f"/v1/models/{NAME}:predict", content=json.dumps({"inputs": {"data": x.tolist()}}))
    assert rows.status_code == cols.status_code == 200
    # The server is another process: same SavedModel and CPU, but its own thread pool and
    # kernel choice, so a few ulps of rounding may differ (JSON carries float32 exactly).
    assert_same_graph(np.asarray(rows.json()["predictions"], np.float32), want, why="served by another process")
    assert_same_graph(np.asarray(cols.json()["outputs"], np.float32), want, why="served by another process")


@pytest.mark.parametrize("output, check", [
    ("json", lambda r: r.json()["classes"][0]["share"] > 0),
    ("labels", lambda r: Image.open(io.BytesIO(r.content)).mode == "L"),
    ("overlay", lambda r: Image.open(io.BytesIO(r.content)).size == (480, 360)),
])
def test_segment_each_output(http, room_jpeg, output, check):
    r = http.post(f"/v1/models/{NAME}:segment?output={output}", content=room_jpeg,
                  headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text[:200]
    assert check(r)


def test_segment_multipart_upload(http, room_png):
    r = http.post(f"/v1/models/{NAME}:segment", files={"image": ("room.png", room_png, "image/png")},
                  headers={"Accept": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_error_cases_over_the_socket(http, room_jpeg):
    cases = [
        (http.post(f"/v1/models/{NAME}:predict", content=b'{"instances": [1, 2'), 400),          # bad JSON
        (http.post(f"/v1/models/{NAME}:predict", json={"instances": [[[1.0, 2.0]]]}), 400),      # wrong shape
        (http.post(f"/v1/models/{NAME}:segment", content=b"%PDF-1.4 not an image"), 400),       # not an image
        (http.post("/v1/models/other:predict", json={"instances": [1]}), 404),                 # unknown model
        (http.get("/no/such/path"), 404),
    ]
    for r, status in cases:
        assert r.status_code == status, (r.request.url, r.status_code, r.text[:200])
        assert set(r.json()) == {"error"}


@pytest.mark.parametrize("size_mb", [3, 12])
def test_oversized_body_gets_413_not_a_reset(http, size_mb):
    """The live service allows 2 MiB; the client is still sending when it answers."""
    r = http.post(f"/v1/models/{NAME}:segment", content=b"\xff" * (size_mb * 2 ** 20))
    assert r.status_code == 413
    assert "exceeds the limit" in r.json()["error"]


def test_chunked_oversized_body_gets_413(http):
    def chunks():
        for _ in range(64):
            yield b"0" * 65536

    r = http.post(f"/v1/models/{NAME}:predict", content=chunks())
    assert r.status_code == 413


def test_still_alive_after_bad_input(http, live_server):
    assert live_server.proc.poll() is None
    assert http.get("/healthz").json()["status"] == "ok"
    metrics = http.get("/metrics").text
    assert 'status="413"' in metrics and 'status="400"' in metrics and 'status="404"' in metrics
