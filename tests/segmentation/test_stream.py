"""The streaming `segment` pipeline: same files and lines as the sequential loop, in order,
bounded queues, and a bad photo in the middle stops the run as before."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from caffe2tf.segmentation.classes import make_palette
from caffe2tf.segmentation.protocol import SegmentationProtocol, segment_image
from caffe2tf.segmentation.stream import OUTPUT_SUFFIXES, SegmentWriter, read_image, segment_files
from caffe2tf.segmentation.visualize import read_label_png

ROOT = Path(__file__).resolve().parents[2]
C = 4
W_COLOUR = np.random.default_rng(7).normal(size=(3, C)).astype(np.float32) / 40
KWARGS = dict(crop_size=(24, 30), base_size=40, scales=(0.75, 1.0), flip=True, softmax=True,
              long_side_offset=1, num_classes=C, batch_size=3)


def logits(batch: np.ndarray) -> np.ndarray:
    """Depends on colour and on the position in the crop (flips and windows matter)."""
    n, h, w, _ = batch.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pos = np.stack([yy / h, xx / w, yy * xx / (h * w), 1 - xx / w], axis=-1)
    return np.tanh(batch @ W_COLOUR) + pos[None]


def photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for i in range(count):
        h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        base = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
        paths.append(folder / f"p{i:02d}.png")
        Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR).save(paths[-1])
    return paths


def writer(out: Path) -> SegmentWriter:
    out.mkdir(parents=True, exist_ok=True)
    return SegmentWriter(out, [f"class {i}" for i in range(C)], make_palette(C), alpha=0.4)


def test_streaming_equals_sequential_in_order(tmp_path):
    files = photos(tmp_path / "in", 7)
    protocol = SegmentationProtocol(**KWARGS)
    seq = segment_files(files, protocol, logits, writer(tmp_path / "seq"), streaming=False)
    order: list[int] = []
    streamed = segment_files(files, protocol, logits, writer(tmp_path / "stream"),
                             on_done=lambda i, _: order.append(i))
    assert streamed == seq and order == list(range(len(files)))
    assert [line.split(":")[0] for line in seq] == [p.name for p in files]
    for p in files:
        for suffix in OUTPUT_SUFFIXES:
            assert (tmp_path / "stream" / f"{p.stem}{suffix}").read_bytes() == \
                   (tmp_path / "seq" / f"{p.stem}{suffix}").read_bytes(), (p, suffix)
        # and the label map is segment_image's
        expected = segment_image(read_image(p), logits, **KWARGS).labels
        np.testing.assert_array_equal(read_label_png(tmp_path / "stream" / f"{p.stem}_labels.png"), expected)
    assert sorted(q.name for q in (tmp_path / "stream").iterdir()) == \
           sorted(q.name for q in (tmp_path / "seq").iterdir())  # no temporary files left


@pytest.mark.parametrize("queue_size", [1, 2])
def test_read_ahead_and_write_behind_are_bounded(tmp_path, queue_size):
    files = photos(tmp_path / "in", 8)
    protocol = SegmentationProtocol(**dict(KWARGS, scales=(1.0,), batch_size=64))  # one call per photo
    lock = threading.Lock()
    state = {"read": 0, "model": 0, "written": 0}
    seen: list[dict] = []

    def read(path: Path) -> np.ndarray:
        with lock:
            state["read"] += 1
        return read_image(path)

    def slow_model(batch: np.ndarray) -> np.ndarray:
        time.sleep(0.15)  # the reader has time to run as far ahead as it may
        with lock:
            seen.append(dict(state))
            state["model"] += 1
        return logits(batch)

    write = writer(tmp_path / "out")

    def slow_write(path: Path, image: np.ndarray, labels: np.ndarray) -> str:
        time.sleep(0.3 if int(path.stem[1:]) < 4 else 0.0)  # the model outruns the first writes
        line = write(path, image, labels)
        with lock:
            state["written"] += 1
        return line

    lines = segment_files(files, protocol, slow_model, slow_write, read=read, queue_size=queue_size)
    assert len(lines) == len(files) and len(seen) == len(files)
    # photo i is in the model: at most i + 1 (its own) + queue_size + 1 (blocked in put) decoded
    assert all(s["read"] <= s["model"] + 1 + queue_size + 1 for s in seen), seen
    assert max(s["read"] - s["model"] for s in seen) >= 2  # it does read ahead
    # at most queue_size photos wait for the writer, plus the one being written
    assert all(s["model"] - s["written"] <= queue_size + 1 for s in seen), seen
    assert max(s["model"] - s["written"] for s in seen) >= 1  # and the model does not wait for it


def test_a_failing_stage_stops_the_run(tmp_path):
    files = photos(tmp_path / "in", 5)
    protocol = SegmentationProtocol(**KWARGS)
    calls = []

    def broken(batch):
        calls.append(len(batch))
        if len(calls) > 3:
            raise RuntimeError("model failed")
        return logits(batch)

    with pytest.raises(RuntimeError, match="model failed"):
        segment_files(files, protocol, broken, writer(tmp_path / "a"))

    def bad_write(path, image, labels):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        segment_files(files, protocol, logits, bad_write)
    assert threading.active_count() < 5  # no stage thread left behind


def test_failed_write_leaves_no_files_of_that_photo(tmp_path, monkeypatch):
    from caffe2tf.segmentation import visualize

    files = photos(tmp_path / "in", 3)
    out = tmp_path / "out"

    def fail(*args, **kwargs):
        raise OSError("no space left")

    monkeypatch.setattr(visualize, "write_legend_png", fail)  # after the label PNG and the overlay
    with pytest.raises(OSError, match="no space left"):
        segment_files(files, SegmentationProtocol(**KWARGS), logits, writer(out))
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module")
def mini_model_dir(tmp_path_factory) -> Path:
    """The bundled example as the serving tests convert it (once per session, PSPNet's mean)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "serving"))
    from serving_helpers import converted_example

    return converted_example(tmp_path_factory.getbasetemp())


def test_cli_corrupt_photo_in_the_middle(mini_model_dir, tmp_path):
    from caffe2tf.cli import cli

    folder = tmp_path / "in"
    files = photos(folder, 5)
    bad = folder / "p02.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["segment", str(mini_model_dir), str(folder), "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if str(bad) in line]
    assert len(errors) == 1 and "not a readable image" in errors[0]
    written = sorted(q.name for q in out.iterdir())
    # the photos before it are complete; nothing of it or after it, no temporary files
    assert written == sorted(f"{p.stem}{s}" for p in files[:2] for s in OUTPUT_SUFFIXES)

    good = tmp_path / "good"
    good.mkdir()
    for p in files[:2] + files[3:]:
        (good / p.name).write_bytes(p.read_bytes())
    res = CliRunner().invoke(cli, ["segment", str(mini_model_dir), str(good), "-o", str(tmp_path / "o2")])
    assert res.exit_code == 0, res.output
    names = re.findall(r"(p\d\d\.png): ", res.output)  # the summary lines (tqdm shares the stream)
    assert names == [p.name for p in files[:2] + files[3:]], res.output
