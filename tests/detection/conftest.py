"""Fixtures for the detection tests: the hand-written fake detector (see detection_helpers) and,
when the SSD layers convert, the real res10_ssd_face face detector."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from detection_helpers import FAKE_CLASSES, fake_detector, res10_or_xfail


@pytest.fixture(scope="session")
def fake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_detector(tmp_path_factory.getbasetemp() / "fake_ssd_named", class_names=FAKE_CLASSES)


@pytest.fixture(scope="session")
def fake_served(fake_dir: Path):
    from caffe2tf.serving.model import ServedModel

    return ServedModel.load(fake_dir)


@pytest.fixture(scope="session")
def res10_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return res10_or_xfail(tmp_path_factory.getbasetemp())
