"""Class names, the indoor grouping, remapping and palettes."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from caffe2tf.errors import Caffe2TFError
from caffe2tf.segmentation import classes as C
from caffe2tf.segmentation.errors import SegmentationInputError

DOC = Path(__file__).resolve().parents[2] / "docs" / "indoor_classes.md"


def test_ade20k_names():
    names = C.load_class_names("ade20k")
    assert len(names) == 150 == len(set(names))
    assert names[:4] == ["wall", "building", "sky", "floor"]
    assert names[12] == "person" and names[44] == "chest of drawers" and names[149] == "flag"
    assert C.load_class_names("ADE20K") == names


def test_indoor_names_and_files(tmp_path):
    assert C.load_class_names("indoor") == list(C.INDOOR_CLASSES)
    assert len(C.INDOOR_CLASSES) == 10
    f = tmp_path / "names.txt"
    f.write_text("# my classes\nsky\n\nroad\n")
    assert C.load_class_names(f) == ["sky", "road"]
    assert C.load_class_names(str(f)) == ["sky", "road"]
    f.write_text("a\nb\na\n")
    with pytest.raises(SegmentationInputError, match="duplicate"):
        C.load_class_names(f)
    with pytest.raises(SegmentationInputError, match="ade20k, indoor") as err:
        C.load_class_names(tmp_path / "missing.txt")
    assert str(err.value).startswith(str(tmp_path / "missing.txt") + ": ")
    assert isinstance(err.value, Caffe2TFError)


def test_indoor_mapping_matches_groups_and_docs():
    ade = C.ade20k_class_names()
    table = C.indoor_mapping()
    assert table.shape == (150,) and table.min() >= 0 and table.max() < 10
    other = C.INDOOR_CLASSES.index("other")
    grouped = {name for members in C.INDOOR_GROUPS.values() for name in members}
    assert grouped <= set(ade)
    for k, name in enumerate(ade):
        if name not in grouped:
            assert table[k] == other, name
    assert table[ade.index("wall")] == 0 and table[ade.index("rug")] == 1
    assert table[ade.index("sky")] == other and table[ade.index("stool")] == 7
    assert (table == other).sum() == 116
    doc = DOC.read_text()
    module_doc = C.__doc__
    for group, members in C.INDOOR_GROUPS.items():
        row = next(line for line in doc.splitlines() if line.startswith(
            f"| {C.INDOOR_CLASSES.index(group)} | {group} |"))
        for name in members:
            entry = f"{name} ({ade.index(name)})"
            assert entry in row, (group, entry)
            assert entry in " ".join(module_doc.split()), (group, entry)
        assert len(re.findall(r"\(\d+\)", row)) == len(members)


def test_remap_matches_loop_and_keeps_ignore():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 150, size=(31, 17))
    labels[::5, ::3] = 255
    table = C.indoor_mapping()
    out = C.remap(labels, table)
    expected = np.array([[255 if v == 255 else table[v] for v in row] for row in labels])
    assert (out == expected).all() and out.dtype == np.uint8


def test_remap_dict_unmapped_and_errors():
    labels = np.array([[0, 1, 2], [3, 255, 1]])
    out = C.remap(labels, {0: 5, 1: 6})
    assert out.tolist() == [[5, 6, 255], [255, 255, 6]]  # unmapped -> ignore
    assert C.remap(labels, {1: 300}, ignore_index=255).dtype == np.int32
    with pytest.raises(ValueError, match="negative"):
        C.remap(np.array([-1]), [0])


def test_ade20k_annotation_to_index():
    ann = np.array([[0, 1, 150], [12, 0, 3]], dtype=np.uint8)
    assert C.ade20k_annotation_to_index(ann).tolist() == [[255, 0, 149], [11, 255, 2]]


@pytest.mark.parametrize("n", [1, 10, 150, 256, 1000])
def test_palette_distinct_deterministic_not_black(n):
    p = C.make_palette(n)
    assert p.shape == (n, 3) and p.dtype == np.uint8
    assert len({tuple(row) for row in p}) == n
    assert not (p == 0).all(axis=1).any()
    assert (C.make_palette(n) == p).all()
    assert (C.make_palette(n + 5)[:n] == p).all()  # prefix-stable
