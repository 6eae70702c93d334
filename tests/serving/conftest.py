"""Fixtures for the service: the bundled example converted once, the app in-process, and the
service as a real subprocess on a free loopback port (shared by the socket, load and browser tests).

The live service runs with ``--workers 1 --queue-size 3``: capacity 4 requests in flight.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detection"))  # detection_helpers

from detection_helpers import FAKE_CLASSES, converted_res10, fake_detector  # noqa: E402
from serving_helpers import LIVE_QUEUE, LIVE_WORKERS, REPO, converted_example, encode  # noqa: E402

ARTIFACTS = REPO / "tests" / ".artifacts"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Starlette's TestClient warns that it will move off httpx; the client works as before."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_example(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def served_model(model_dir: Path):
    from caffe2tf.model_dir.served import ServedModel

    return ServedModel.load(model_dir)


@pytest.fixture(scope="session")
def saved_model_fn(model_dir: Path):
    """The SavedModel's serving_default, loaded on its own (not through the service's code)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir / "saved_model"))
    sig = loaded.signatures["serving_default"]

    def run(x: np.ndarray) -> np.ndarray:
        return sig(data=tf.constant(x, tf.float32))["output_0"].numpy()

    run.keep = loaded  # signatures hold weak references to the loaded object
    return run


@pytest.fixture(scope="session")
def client(served_model):
    from starlette.testclient import TestClient

    from caffe2tf.serving.app import ServeConfig, create_app

    app = create_app(served_model, ServeConfig(workers=1, queue_size=4, max_body_bytes=2 * 2 ** 20,
                                               max_image_pixels=4_000_000, max_batch=8))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def det_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-written fake detector (tests/detection/detection_helpers.py)."""
    return fake_detector(tmp_path_factory.getbasetemp() / "fake_ssd_named", class_names=FAKE_CLASSES)


@pytest.fixture(scope="session")
def res10_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """res10_ssd_face converted (real weights, classes background/face)."""
    return converted_res10(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def det_client(det_model_dir: Path):
    from starlette.testclient import TestClient

    from caffe2tf.serving.app import ServeConfig, create_app
    from caffe2tf.model_dir.served import ServedModel

    app = create_app(ServedModel.load(det_model_dir), ServeConfig(workers=1, queue_size=4,
                                                                  max_body_bytes=2 * 2 ** 20,
                                                                  max_image_pixels=4_000_000))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def room_photo() -> np.ndarray:
    from caffe2tf.segmentation.synthetic import synthetic_room

    return synthetic_room((360, 480), seed=7)[0]


@pytest.fixture(scope="session")
def room_jpeg(room_photo: np.ndarray) -> bytes:
    return encode(room_photo, "JPEG")


@pytest.fixture(scope="session")
def room_png(room_photo: np.ndarray) -> bytes:
    return encode(room_photo, "PNG")


class LiveServer:
    def __init__(self, proc: subprocess.Popen, url: str, lines: list[str]) -> None:
        self.proc, self.url, self.lines = proc, url, lines

    def log(self) -> str:
        return "".join(self.lines[-60:])


def _pump(stream, lines: list[str], ready: threading.Event, found: list[str]) -> None:  # noqa: ANN001
    for line in iter(stream.readline, ""):
        lines.append(line)
        if not found and line.startswith("serving '") and " on http://" in line:
            found.append(line.split(" on ", 1)[1].split()[0])
            ready.set()
    ready.set()


def serve_cmd(*args: str) -> list[str]:
    """``caffe2tf serve ...`` as a subprocess command (the CLI's main, whatever the entry points)."""
    return [sys.executable, "-c", "import sys; from caffe2tf.cli import main; main(sys.argv[1:])", *args]


@contextlib.contextmanager
def running_service(model_dir: Path, *extra: str) -> Iterator[LiveServer]:
    """``caffe2tf serve MODEL --port 0 ...`` as a subprocess, answering /healthz; stopped after."""
    import httpx

    cmd = serve_cmd("serve", str(model_dir), "--port", "0", *extra)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=REPO, start_new_session=True)
    lines: list[str] = []
    ready, found = threading.Event(), []
    threading.Thread(target=_pump, args=(proc.stdout, lines, ready, found), daemon=True).start()
    try:
        if not ready.wait(180) or not found:
            pytest.fail("the service did not start:\n" + "".join(lines[-40:]))
        url = found[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the service does not answer /healthz:\n" + "".join(lines[-40:]))
            time.sleep(0.2)
        yield LiveServer(proc, url, lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="session")
def live_server(model_dir: Path):
    """The bundled example served by a subprocess (``--workers 1 --queue-size 3``)."""
    with running_service(model_dir, "--workers", str(LIVE_WORKERS), "--queue-size", str(LIVE_QUEUE),
                         "--max-body-mb", "2", "--log-level", "warning") as server:
        yield server


CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium driven by Playwright (skipped where either is missing).

    Module scope, not session: Playwright's sync API keeps an asyncio loop running on this
    thread while the browser is open, which would break later tests calling asyncio.run()."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium "
                    "(`apt-get install -y chromium`, or `make browser`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (dev extra)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def watch_page(pg, url: str) -> list[str]:  # noqa: ANN001 - a Playwright page
    """Collect page errors, console errors (but the expected 400s) and requests leaving ``url``."""
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
          if msg.type == "error" and "400" not in msg.text else None)
    pg.on("request", lambda req: problems.append(f"external request: {req.url}")
          if not req.url.startswith((url, "data:", "blob:")) else None)
    return problems


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
