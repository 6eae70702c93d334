"""Helpers shared by the detection and serving tests (imported by name; tests/serving puts this
folder on sys.path).

* :func:`fake_detector` writes a converted-model directory by hand: a tiny Keras model whose
  only output has the converted DetectionOutput's NHWC shape ``[1, rows, 7, 1]`` and fixed rows
  (a zero kernel plus a bias holding the rows), and a ``conversion.json`` that names a
  ``DetectionOutput`` layer with SSD-shaped bottoms, as ``caffe2tf convert`` writes it. It
  tests everything after the network (preprocessing, rows -> pixels, thresholds, names,
  drawing, the CLI and the service) without depending on the SSD translators.
* :func:`converted_res10` converts ``res10_ssd_face`` (real weights) once per session, and
  :func:`astronaut` rebuilds the photo its reference input was made from.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RES10 = REPO.parent / "shared" / "caffe_reference" / "res10_ssd_face"
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)

FAKE_INPUT = (64, 48)  # (height, width): not square, so x/y mix-ups show
FAKE_CLASSES = ["background", "cat", "dog"]
# [image, label, score, xmin, ymin, xmax, ymax]; row 1 leaves the image (xmax 1.2, ymin -0.1)
FAKE_ROWS = np.array([
    [0, 1, 0.30, 0.05, 0.05, 0.20, 0.25],
    [0, 2, 0.70, 0.55, -0.10, 1.20, 0.50],
    [0, 1, 0.95, 0.10, 0.20, 0.50, 0.60],
    [0, 2, 0.05, 0.00, 0.00, 1.00, 1.00],
], dtype=np.float32)


def fake_detector(out: Path, *, class_names: list[str] | None = None, rows: np.ndarray = FAKE_ROWS,
                  mean_bgr: tuple[float, float, float] | None = (104.0, 117.0, 123.0)) -> Path:
    """A converted-model directory at ``out`` (see module docstring); returns ``out``."""
    if (out / "conversion.json").is_file():
        return out
    import contextlib
    import io

    import keras

    h, w = FAKE_INPUT
    n = len(rows)
    inp = keras.Input((h, w, 3), name="data")
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(inp)
    dense = keras.layers.Dense(n * 7, kernel_initializer="zeros", name="rows")
    flat = dense(pooled)
    dense.set_weights([np.zeros((3, n * 7), np.float32), rows.reshape(-1).astype(np.float32)])
    det = keras.layers.Reshape((n, 7, 1), name="detection_out")(flat)
    model = keras.Model(inp, det, name="fake_ssd")
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    with contextlib.redirect_stdout(io.StringIO()):
        model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
    priors, classes = 6, 3

    def layer(name, type_, bottoms, tops, shapes):  # noqa: ANN001, ANN202
        return {"name": name, "type": type_, "bottoms": bottoms, "tops": tops, "values": tops, "shapes": shapes,
                "keras_tensors": [None] * len(tops), "keras_layers": [], "folded_into": None}

    record = {
        "format": "caffe2tf-conversion/1", "caffe2tf_version": "test", "name": "fake_ssd",
        "source": {"prototxt": None, "caffemodel": None, "caffemodel_sha256": None},
        "input_layout": "nhwc", "folded": True, "folds": {},
        "inputs": [{"blob": "data", "value": "data", "caffe_shape": [1, 3, h, w], "keras_shape": [1, h, w, 3],
                    "keras_name": "data"}],
        "outputs": [{"blob": "detection_out", "value": "detection_out", "caffe_shape": [1, 1, n, 7],
                     "keras_shape": [1, n, 7, 1], "keras_name": "detection_out"}],
        "keras_outputs": ["detection_out"],
        "preprocessing": {"mean": list(mean_bgr) if mean_bgr else None, "scale": 1.0, "bgr": True},
        "layers": [
            layer("input", "Input", [], ["data"], [[1, 3, h, w]]),
            layer("mbox_loc", "Flatten", ["data"], ["mbox_loc"], [[1, priors * 4]]),
            layer("mbox_conf_flatten", "Flatten", ["data"], ["mbox_conf_flatten"], [[1, priors * classes]]),
            layer("mbox_priorbox", "PriorBox", ["data"], ["mbox_priorbox"], [[1, 2, priors * 4]]),
            layer("detection_out", "DetectionOutput", ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"],
                  ["detection_out"], [[1, 1, n, 7]]),
        ],
    }
    if class_names is not None:
        record["class_names"] = list(class_names)
    (out / "conversion.json").write_text(json.dumps(record, indent=1))
    return out


def converted_res10(base: Path) -> Path:
    """``res10_ssd_face`` converted with its mean (BGR, ImageNet) and classes background/face,
    under ``base``, once per session. Raises what ``convert`` raises (e.g. before the SSD
    layers are supported)."""
    out = base / "res10_ssd_face_model"
    if (out / "conversion.json").is_file():
        return out
    from caffe2tf.pipeline import Preprocessing, convert

    convert(RES10 / "net.prototxt", RES10 / "weights.caffemodel", out, force=True,
            preprocessing=Preprocessing(mean=IMAGENET_MEAN_BGR, scale=1.0, bgr=True),
            class_names=["background", "face"])
    return out


def res10_reference() -> tuple[np.ndarray, np.ndarray]:
    """(the recorded input ``[1, 3, 300, 300]`` BGR minus mean, Caffe's DetectionOutput rows ``[R, 7]``)."""
    import h5py

    with h5py.File(RES10 / "reference.h5", "r") as f:
        x = f["inputs/0"][()]
        last = f["layers"][sorted(f["layers"])[-1]]
        assert last.attrs["type"] == "DetectionOutput"
        rows = last["top0"][()].reshape(-1, 7)
    return x, rows


def astronaut() -> np.ndarray:
    """The 300x300 RGB photo behind the recorded input: BGR minus the ImageNet mean, mean added
    back, rounded to uint8 (the recorded values are resampled floats, so rounding changes each
    pixel by at most 0.5)."""
    x, _ = res10_reference()
    bgr = x[0].transpose(1, 2, 0) + np.asarray(IMAGENET_MEAN_BGR, np.float32)
    return np.clip(np.rint(bgr[..., ::-1]), 0, 255).astype(np.uint8)


def without_detection_layer(src: Path, dst: Path) -> Path:
    """A copy of the converted model ``src`` whose record calls its DetectionOutput a Softmax:
    the same SavedModel, no longer a detection model."""
    import shutil

    shutil.copytree(src, dst)
    rec = json.loads((dst / "conversion.json").read_text())
    for layer in rec["layers"]:
        if layer["type"] == "DetectionOutput":
            layer["type"] = "Softmax"
    (dst / "conversion.json").write_text(json.dumps(rec))
    return dst

