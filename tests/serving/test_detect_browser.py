"""The page with a detection model, in Debian's headless Chromium (Playwright): the fake
detector's known boxes land where they belong on the photo, and res10_ssd_face finds the
astronaut's face (screenshot under tests/.artifacts/)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import running_service, watch_page
from detection_helpers import astronaut, res10_reference
from PIL import Image

pytestmark = pytest.mark.browser

BOX_JS = """() => {
    const img = document.getElementById('overlay').getBoundingClientRect();
    return [...document.querySelectorAll('#boxes .box')].map(el => {
        const r = el.getBoundingClientRect();
        return {label: el.dataset.label, score: parseFloat(el.dataset.score), tag: el.innerText,
                x0: (r.left - img.left) / img.width, y0: (r.top - img.top) / img.height,
                x1: (r.right - img.left) / img.width, y1: (r.bottom - img.top) / img.height};
    });
}"""


def _open(browser, server):  # noqa: ANN001, ANN202
    context = browser.new_context(viewport={"width": 1360, "height": 860}, device_scale_factor=1)
    pg = context.new_page()
    pg.problems = watch_page(pg, server.url)
    pg.goto(server.url + "/")
    pg.wait_for_selector("#model.up", timeout=30_000)
    return context, pg


@pytest.fixture(scope="module")
def fake_server(det_model_dir: Path):
    with running_service(det_model_dir, "--log-level", "warning") as server:
        yield server


@pytest.fixture(scope="module")
def res10_server(res10_model_dir: Path):
    with running_service(res10_model_dir, "--log-level", "warning") as server:
        yield server


def test_page_draws_the_detectors_boxes_on_the_photo(browser, fake_server, tmp_path):
    context, page = _open(browser, fake_server)
    try:
        assert "Drop a photo here" in page.inner_text("#drop-title")
        assert ":detect" in page.inner_text("#api")
        photo = tmp_path / "street.png"
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(photo)
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("body.done", timeout=90_000)
        boxes = page.evaluate(BOX_JS)
        assert [b["label"] for b in boxes] == ["cat", "dog"]
        cat = boxes[0]
        # the fake's cat row: (0.10, 0.20) - (0.50, 0.60) of the image; the page draws a 3 px border
        # outside nothing, inside the box, so its outer edges are the box (1 px of layout rounding)
        px = 1.5 / page.eval_on_selector("#overlay", "img => img.getBoundingClientRect().width")
        assert cat["x0"] == pytest.approx(0.10, abs=px) and cat["x1"] == pytest.approx(0.50, abs=px)
        assert cat["y0"] == pytest.approx(0.20, abs=px) and cat["y1"] == pytest.approx(0.60, abs=px)
        assert "cat 0.95" in cat["tag"]
        assert page.locator("#legend li").count() == 2 and "cat" in page.inner_text("#legend")
        assert "2 detections" in page.inner_text("#status")
        assert page.problems == []
    finally:
        context.close()


def test_page_finds_the_astronauts_face(browser, res10_server, tmp_path, artifacts):
    _, caffe_rows = res10_reference()
    face = caffe_rows[0]  # Caffe's first row: the face, score 0.99999
    context, page = _open(browser, res10_server)
    try:
        photo = tmp_path / "astronaut.png"
        Image.fromarray(astronaut()).save(photo)
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("body.done", timeout=120_000)
        boxes = page.evaluate(BOX_JS)
        assert boxes and boxes[0]["label"] == "face", boxes
        assert boxes[0]["score"] > 0.99
        # the photo is the recorded input rounded to uint8 (<= 0.5 grey levels per pixel): the box
        # moves by far less than a pixel; 2 px of 300 covers that and the page's layout rounding
        tol = 2 / 300
        got = [boxes[0][k] for k in ("x0", "y0", "x1", "y1")]
        np.testing.assert_allclose(got, face[3:7], atol=tol)
        assert "face" in page.inner_text("#legend")
        page.screenshot(path=str(artifacts / "serving_detect_page.png"), full_page=True)
        assert page.problems == []
    finally:
        context.close()
