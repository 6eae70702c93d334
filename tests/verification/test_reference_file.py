"""Tests for caffe2tf.verification.reference_file."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from caffe2tf.errors import Caffe2TFError
from caffe2tf.verification.reference_file import (
    ReferenceFileError, read_reference, write_reference)

SHARED = Path(__file__).parents[2].parent / "shared" / "caffe_reference"


def _write_small(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(1)
    data = rng.randn(1, 3, 4, 4).astype(np.float32)
    small = rng.randn(1, 2, 4, 4).astype(np.float32)
    big = rng.randn(1, 5, 40, 40).astype(np.float32)
    write_reference(path, case="t", inputs={"data": data},
                    layers=[("a", "ReLU", ["data"], ["a"], [small]),
                            ("b", "Convolution", ["a"], ["b", "c"], [big, small])],
                    sample_threshold=1000, num_samples=100, seed=3)
    return {"data": data, "small": small, "big": big}


def test_round_trip_full_and_sampled(tmp_path: Path) -> None:
    arrays = _write_small(tmp_path / "r.h5")
    ref = read_reference(tmp_path / "r.h5")
    assert ref.case == "t" and ref.attrs["num_layers"] == 2
    assert list(ref.inputs) == ["data"]
    np.testing.assert_array_equal(ref.inputs["data"], arrays["data"])
    a, b = ref.layers
    assert (a.index, a.name, a.type, a.bottoms, a.tops) == (0, "a", "ReLU", ["data"], ["a"])
    assert not a.outputs[0].is_sampled
    np.testing.assert_array_equal(a.outputs[0].array, arrays["small"])
    out = b.outputs[0]
    assert out.is_sampled and out.shape == (1, 5, 40, 40) and out.index.size == 100
    assert np.all(np.diff(out.index) > 0)
    np.testing.assert_array_equal(out.value, arrays["big"].reshape(-1)[out.index])
    assert out.stats["abs_max"] == pytest.approx(float(np.abs(arrays["big"]).max()))
    assert out.abs_max == pytest.approx(float(np.abs(arrays["big"]).max()))
    np.testing.assert_array_equal(out.argmax_axis1, arrays["big"].argmax(axis=1))
    assert not b.outputs[1].is_sampled
    assert ref.layer("b") is b


def test_missing_file_is_caffe2tf_error(tmp_path: Path) -> None:
    with pytest.raises(Caffe2TFError) as e:
        read_reference(tmp_path / "nope.h5")
    assert "nope.h5" in str(e.value) and "\n" not in str(e.value)


def test_not_hdf5(tmp_path: Path) -> None:
    p = tmp_path / "x.h5"
    p.write_text("hello")
    with pytest.raises(ReferenceFileError, match="x.h5"):
        read_reference(p)


@pytest.mark.parametrize("corrupt", ["format", "tops", "top", "index"])
def test_malformed(tmp_path: Path, corrupt: str) -> None:
    p = tmp_path / "r.h5"
    _write_small(p)
    with h5py.File(p, "a") as f:
        if corrupt == "format":
            f.attrs["format"] = "other/9"
        elif corrupt == "tops":
            f["layers/0000"].attrs["tops"] = "not json"
        elif corrupt == "top":
            del f["layers/0001/top1"]
        else:
            del f["layers/0001/top0/index"]
    with pytest.raises(ReferenceFileError) as e:
        read_reference(p)
    assert "r.h5" in str(e.value) and "\n" not in str(e.value)


def test_reads_shared_case() -> None:
    path = SHARED / "conv_basic" / "reference.h5"
    if not path.exists():
        pytest.skip("shared references not present")
    ref = read_reference(path)
    assert ref.case == "conv_basic"
    assert ref.inputs["data"].shape == (2, 3, 9, 9)
    assert ref.layers[0].name == "conv" and ref.layers[0].outputs[0].shape == (2, 8, 9, 9)


def test_reads_shared_sampled_case() -> None:
    path = SHARED / "pspnet50_ade20k_473" / "reference.h5"
    if not path.exists():
        pytest.skip("shared references not present")
    ref = read_reference(path)
    first = ref.layers[0].outputs[0]
    assert first.is_sampled and first.shape == (1, 64, 237, 237)
    assert first.argmax_axis1.shape == (1, 237, 237)
    assert json.loads(json.dumps(ref.layers[0].tops)) == ["conv1_1_3x3_s2"]
