"""`caffe2tf serve` on a detection model as a real subprocess on a loopback port: the first
line, --classes naming the labels, :detect over the socket."""
from __future__ import annotations

import httpx
import numpy as np
from conftest import running_service
from serving_helpers import encode


def test_serve_a_detector_with_class_names(det_model_dir, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("kitty\npuppy\n")  # no background: it is inserted at label 0
    with running_service(det_model_dir, "--classes", str(names), "--log-level", "warning") as server:
        first = next(line for line in server.lines if line.startswith("serving '"))
        assert "fake_ssd" in first and "no :segment" not in first
        model = httpx.get(server.url + "/healthz", timeout=10).json()["model"]
        assert model["kind"] == "detection"
        assert model["detection"]["class_names"] == ["background", "kitty", "puppy"]
        photo = np.random.default_rng(5).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        r = httpx.post(server.url + "/v1/models/fake_ssd:detect", content=encode(photo, "JPEG"),
                       headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert r.status_code == 200, r.text
        assert [d["name"] for d in r.json()["detections"]] == ["kitty", "puppy"]
        png = httpx.post(server.url + "/v1/models/fake_ssd:detect?format=png", content=encode(photo, "PNG"),
                         timeout=60)
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
