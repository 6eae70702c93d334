"""The page in a real browser: Debian's headless Chromium driven by Playwright (which never
downloads a browser here). Uploads a photo of a room, waits for the overlay, checks the legend
and the timing, and saves a screenshot under tests/.artifacts/."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
from PIL import Image
from conftest import watch_page
from serving_helpers import INDOOR_CLASSES

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1360, "height": 860}, device_scale_factor=1)
    pg = context.new_page()
    pg.problems = watch_page(pg, live_server.url)
    yield pg
    context.close()


@pytest.fixture(scope="module")
def room_file(tmp_path_factory) -> Path:
    from caffe2tf.segmentation.synthetic import synthetic_room

    path = tmp_path_factory.mktemp("photos") / "living_room.jpg"
    Image.fromarray(synthetic_room((480, 640), seed=11)[0]).save(path, quality=92)
    return path


def test_upload_shows_overlay_legend_and_timing(page, live_server, room_file, artifacts):
    page.goto(live_server.url + "/")
    page.wait_for_selector("#model.up", timeout=30_000)
    assert "mini_pspnet" in page.text_content("#model-name")
    page.set_input_files("#file", str(room_file))
    page.wait_for_selector("body.done", timeout=90_000)
    assert page.eval_on_selector("#overlay", "img => img.complete && img.naturalWidth") == 640
    assert page.eval_on_selector("#photo", "img => img.complete && img.naturalWidth") == 640
    items = page.locator("#legend li")
    assert items.count() >= 1
    first = items.nth(0).inner_text()
    assert "%" in first and first.split()[0] in INDOOR_CLASSES  # names recorded by convert --classes
    timing = page.inner_text("#timing")
    assert "Model" in timing and "Round trip" in timing and "ms" in timing
    assert "class" in page.inner_text("#status")
    page.screenshot(path=str(artifacts / "serving_page.png"), full_page=True)
    assert page.problems == []


def test_drop_a_png_and_see_an_error_for_a_non_image(page, live_server, room_file):
    page.goto(live_server.url + "/")
    page.wait_for_selector("#model.up", timeout=30_000)
    png = room_file.with_suffix(".png")
    Image.open(room_file).save(png)
    data = base64.b64encode(png.read_bytes()).decode()
    drop = """([b64, name, type]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, {type}));
        document.getElementById('drop').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }"""
    page.evaluate(drop, [data, "room.png", "image/png"])
    page.wait_for_selector("body.done", timeout=90_000)
    assert page.locator("#legend li").count() >= 1
    # a file that claims to be a JPEG but is not: the service's one-line reason is shown
    page.evaluate(drop, [base64.b64encode(b"definitely not a jpeg").decode(), "fake.jpg", "image/jpeg"])
    page.wait_for_selector("#status.error", timeout=30_000)
    assert "not an image" in page.inner_text("#status")
    assert [p for p in page.problems if not p.startswith("console")] == []
