"""Fixtures for the detection tests: the hand-written fake detector (see detection_helpers) and
the real res10_ssd_face face detector, converted once per session."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from detection_helpers import FAKE_CLASSES, converted_res10, fake_detector


@pytest.fixture(scope="session")
def fake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_detector(tmp_path_factory.getbasetemp() / "fake_ssd_named", class_names=FAKE_CLASSES)


@pytest.fixture(scope="session")
def fake_served(fake_dir: Path):
    from caffe2tf.model_dir.served import ServedModel

    return ServedModel.load(fake_dir)


@pytest.fixture(scope="session")
def res10_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_res10(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    from detection_helpers import REPO

    d = REPO / "tests" / ".artifacts"
    d.mkdir(parents=True, exist_ok=True)
    return d
