"""`prepare_dataset` on a small ADE20K-format set generated here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from caffe2tf.segmentation.classes import INDOOR_CLASSES, indoor_mapping, remap
from caffe2tf.segmentation.dataset import Rules, load_scheme, prepare_dataset, read_manifest
from caffe2tf.segmentation.errors import SegmentationInputError

from tests.segmentation.ade20k_fixture import BROKEN, write_ade20k_set


@pytest.fixture(scope="module")
def ade(tmp_path_factory) -> Path:
    return write_ade20k_set(tmp_path_factory.mktemp("ade") / "ADEChallengeData2016", n=10)


def test_prepare_remaps_drops_splits(ade, tmp_path):
    res = prepare_dataset(tmp_path / "p", ade20k_root=ade, scheme="indoor", val_fraction=0.3, seed=3)
    reasons = {Path(d["image"]).stem: d["rule"] for d in res.dropped}
    assert reasons == BROKEN  # each broken sample dropped by its own rule, nothing else dropped
    assert len(res.kept) == 10 and res.count("val") == 3 and res.count("train") == 7
    assert res.class_names == list(INDOOR_CLASSES)
    lut = {0: 255, **{k + 1: int(v) for k, v in enumerate(indoor_mapping())}}
    total = np.zeros(10, np.int64)
    for image, label in read_manifest(res.manifest):
        stem = image.stem
        ann = np.asarray(Image.open(ade / "annotations" / image.parent.name / f"{stem}.png"))
        got = np.asarray(Image.open(label))
        np.testing.assert_array_equal(got, remap(ann, lut))  # exact remap, 0 -> ignore
        assert got.shape == Image.open(image).size[::-1]
        total += np.bincount(got[got != 255].astype(np.int64), minlength=10)
    counts = np.add(res.pixel_counts["train"], res.pixel_counts["val"])
    np.testing.assert_array_equal(counts, total)
    lines = [json.loads(x) for x in res.manifest.read_text().splitlines()]
    assert {r["split"] for r in lines} == {"train", "val"}
    assert all(0.5 <= r["labelled"] < 1 and len(r["classes"]) >= 2 for r in lines)
    report = res.report.read_text()
    assert "class_frequencies.png" in report and "b_tiny" in report and "min_labelled" in report
    assert res.chart.is_file() and res.chart.stat().st_size > 1000
    info = json.loads((tmp_path / "p" / "dataset.json").read_text())
    assert info["kept"] == 10 and info["dropped"] == 5 and info["rules"]["min_classes"] == 2


def test_split_is_seeded(ade, tmp_path):
    def val(seed, tag):
        res = prepare_dataset(tmp_path / tag, ade20k_root=ade, val_fraction=0.3, seed=seed)
        return sorted(str(p[0].name) for p in read_manifest(res.manifest, "val"))
    a, b = val(1, "a"), val(1, "b")
    assert a == b
    assert any(val(s, f"s{s}") != a for s in (2, 3, 4))


def test_rules_are_configurable(ade, tmp_path):
    res = prepare_dataset(tmp_path / "p", ade20k_root=ade, rules=Rules(min_labelled=0.0, min_classes=1, min_side=8),
                          val_fraction=0.0)
    assert sorted(d["rule"] for d in res.dropped) == ["size mismatch", "unreadable"]
    assert len(res.kept) == 13 and res.count("val") == 0


def test_folder_pair_and_mapping_file(ade, tmp_path):
    from caffe2tf.segmentation.synthetic import write_dataset

    write_dataset(tmp_path / "rooms", 4, 80, seed=1, classes="indoor")
    mapping = tmp_path / "map.json"  # indoor -> {structure 0, furniture 1}; "other" (9) ignored
    mapping.write_text(json.dumps({"classes": ["structure", "furniture"],
                                   "map": {**{str(i): 0 for i in range(5)}, **{str(i): 1 for i in range(5, 9)},
                                           "9": 255}}))
    res = prepare_dataset(tmp_path / "p", images_dir=tmp_path / "rooms" / "images",
                          labels_dir=tmp_path / "rooms" / "labels", scheme=mapping, rules=Rules(min_classes=1),
                          val_fraction=0.25)
    assert res.class_names == ["structure", "furniture"] and len(res.kept) == 4
    for image, label in read_manifest(res.manifest):
        src = np.asarray(Image.open(tmp_path / "rooms" / "labels" / label.name))
        got = np.asarray(Image.open(label))
        np.testing.assert_array_equal(got, np.where(src < 5, 0, np.where(src < 9, 1, 255)))
    text = tmp_path / "map.txt"
    text.write_text("# src dst\n1 0\n2 x\n")
    with pytest.raises(SegmentationInputError, match=r"map.txt:3"):
        load_scheme(text)


def test_bad_inputs(tmp_path):
    with pytest.raises(SegmentationInputError, match="annotations"):
        prepare_dataset(tmp_path / "o", ade20k_root=tmp_path)
    (tmp_path / "m.jsonl").write_text('{"image": "a.jpg"}\n')
    with pytest.raises(SegmentationInputError, match=r"m.jsonl:1"):
        read_manifest(tmp_path / "m.jsonl")
