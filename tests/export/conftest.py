"""Fixtures for the TFLite export: the bundled example converted once per session (the same
directory the serving tests use, when they run in the same session), copied per test."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mini_pspnet"
PSPNET_MEAN_BGR = (103.939, 116.779, 123.68)


@pytest.fixture(scope="session")
def converted_example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.getbasetemp() / "mini_pspnet_model"
    if not (out / "conversion.json").is_file():
        from caffe2tf.pipeline import Preprocessing, convert

        from caffe2tf.segmentation.classes import load_class_names

        # exactly as tests/serving/serving_helpers.converted_example, which may reuse this directory
        convert(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel", out, force=True,
                preprocessing=Preprocessing(mean=PSPNET_MEAN_BGR, scale=1.0, bgr=True),
                class_names=load_class_names("indoor"))
    return out


@pytest.fixture
def model_copy(converted_example_dir: Path, tmp_path: Path) -> Path:
    """A private copy (the export writes model.tflite and conversion.json into it)."""
    dst = tmp_path / "model"
    shutil.copytree(converted_example_dir, dst, ignore=shutil.ignore_patterns("*.tflite"))
    return dst
