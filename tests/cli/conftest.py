from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mini_pspnet"


@pytest.fixture(scope="session")
def mini_model_dir(tmp_path_factory) -> Path:
    """The bundled example converted once (folded, NHWC, with SavedModel)."""
    from caffe2tf.pipeline import Preprocessing, convert

    out = tmp_path_factory.mktemp("mini") / "model"
    convert(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel", out,
            preprocessing=Preprocessing(mean=(103.939, 116.779, 123.68), bgr=True))
    return out


@pytest.fixture(scope="session")
def rooms(tmp_path_factory) -> dict[str, Path]:
    from caffe2tf.segmentation.synthetic import write_dataset

    base = tmp_path_factory.mktemp("rooms")
    write_dataset(base / "train", 48, size=140, seed=100, classes="indoor")
    write_dataset(base / "val", 6, size=150, seed=900, classes="indoor")
    return {"train": base / "train", "val": base / "val"}
