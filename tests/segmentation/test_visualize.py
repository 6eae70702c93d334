"""Label PNGs, overlays and legends."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from caffe2tf.segmentation.classes import make_palette
from caffe2tf.segmentation.visualize import (colorize, legend, legend_image, overlay,
                                             read_label_png, write_label_png,
                                             write_legend_png, write_overlay_png)


def test_label_png_roundtrip_8_and_16_bit(tmp_path):
    small = np.random.default_rng(0).integers(0, 150, (13, 21))
    p = write_label_png(small, tmp_path / "a" / "small.png")
    with Image.open(p) as im:
        assert im.mode == "L"
    assert (read_label_png(p) == small).all()
    big = small * 3  # up to 447: needs 16 bits
    p = write_label_png(big, tmp_path / "big.png")
    with Image.open(p) as im:
        assert im.mode.startswith("I")
    assert (read_label_png(p) == big).all()
    with pytest.raises(ValueError, match="16-bit"):
        write_label_png(np.array([[70000]]), tmp_path / "x.png")


def test_colorize_and_overlay():
    labels = np.array([[0, 1], [2, 255]])
    pal = make_palette(3)
    rgb = colorize(labels, pal)
    assert (rgb[0, 0] == pal[0]).all() and (rgb[1, 0] == pal[2]).all()
    assert (rgb[1, 1] == 0).all()  # ignored -> black
    photo = np.full((2, 2, 3), 100, np.uint8)
    assert (overlay(photo, labels, pal, alpha=0.0) == photo).all()
    full = overlay(photo, labels, pal, alpha=1.0)
    assert (full[0, 1] == pal[1]).all() and (full[1, 1] == 100).all()  # ignore keeps photo
    half = overlay(photo, labels, pal, alpha=0.5)
    expected = np.rint(0.5 * 100 + 0.5 * pal[2].astype(float)).astype(np.uint8)
    assert (half[1, 0] == expected).all()
    with pytest.raises(ValueError, match="palette"):
        colorize(np.array([[5]]), pal)
    with pytest.raises(ValueError, match="do not match"):
        overlay(photo[:1], labels, pal)


def test_legend_sorted_by_share_and_images(tmp_path):
    labels = np.array([[2, 2, 2, 0], [1, 1, 255, 255]])
    names = ["wall", "floor", "sky"]
    entries = legend(labels, names)
    assert [(e.index, e.name) for e in entries] == [(2, "sky"), (1, "floor"), (0, "wall")]
    assert [e.share for e in entries] == pytest.approx([0.5, 1 / 3, 1 / 6])
    assert entries[0].colour == tuple(int(v) for v in make_palette(3)[2])
    assert [e.index for e in legend(labels, names, min_share=0.3)] == [2, 1]
    im = legend_image(entries)
    assert im.mode == "RGB" and im.height > 3 * 14
    # the swatch of the first row has the first entry's colour
    assert im.getpixel((6 + 7, 6 + 7)) == entries[0].colour
    assert legend(np.full((2, 2), 255), names) == []
    assert legend_image([]).size[0] > 0
    p = write_legend_png(entries, tmp_path / "legend.png")
    photo = np.zeros((2, 4, 3), np.uint8)
    q = write_overlay_png(photo, labels, tmp_path / "overlay.png", make_palette(3))
    for path in (p, q):
        with Image.open(path) as png:
            assert png.mode == "RGB"
