"""Class names, colour palettes and label remapping.

ADE20K
------
``load_class_names("ade20k")`` returns the 150 SceneParsing classes in the order of
``objectInfo150`` (index 0 = ``wall`` ... 149 = ``flag``), which is the order of
PSPNet's ``pspnet50_ADE20K_473`` output channels. ADE20K's annotation PNGs store
0 for "unlabelled" and 1..150 for the classes; :func:`ade20k_annotation_to_index`
turns them into network indices 0..149 with unlabelled pixels as ``ignore_index``.

Indoor grouping
---------------
``load_class_names("indoor")`` returns ten coarse indoor classes and
:func:`indoor_mapping` maps every ADE20K index onto them (also documented in
``docs/indoor_classes.md``). Every ADE20K class not listed goes to ``other``.

=====  ========  ==================================================================
index  name      ADE20K classes (ADE20K index)
=====  ========  ==================================================================
0      wall      wall (0)
1      floor     floor (3), rug (28)
2      ceiling   ceiling (5)
3      window    windowpane (8), curtain (18), blind (63)
4      door      door (14), screen door (58)
5      bed       bed (7), cradle (117)
6      table     table (15), desk (33), counter (45), pool table (56),
                 coffee table (64), countertop (70), kitchen island (73)
7      seating   chair (19), sofa (23), armchair (30), seat (31), cushion (39),
                 bench (69), swivel chair (75), ottoman (97), stool (110)
8      storage   cabinet (10), shelf (24), wardrobe (35), chest of drawers (44),
                 case (55), bookcase (62), buffet (99)
9      other     the remaining 116 ADE20K classes
=====  ========  ==================================================================

Palette
-------
:func:`make_palette` is deterministic: PASCAL VOC's bit-interleaving palette shifted
by one, so every class colour is distinct and none is black (black = ignored).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from caffe2tf.segmentation.errors import SegmentationInputError

IGNORE_INDEX = 255

INDOOR_CLASSES: tuple[str, ...] = (
    "wall", "floor", "ceiling", "window", "door", "bed", "table", "seating", "storage", "other",
)

#: Indoor class name -> the ADE20K class names grouped into it (everything else is "other").
INDOOR_GROUPS: dict[str, tuple[str, ...]] = {
    "wall": ("wall",),
    "floor": ("floor", "rug"),
    "ceiling": ("ceiling",),
    "window": ("windowpane", "curtain", "blind"),
    "door": ("door", "screen door"),
    "bed": ("bed", "cradle"),
    "table": ("table", "desk", "counter", "pool table", "coffee table", "countertop",
              "kitchen island"),
    "seating": ("chair", "sofa", "armchair", "seat", "cushion", "bench", "swivel chair",
                "ottoman", "stool"),
    "storage": ("cabinet", "shelf", "wardrobe", "chest of drawers", "case", "bookcase",
                "buffet"),
}

_BUILTIN = ("ade20k", "indoor")
_ADE20K_FILE = Path(__file__).resolve().parent.parent / "data" / "ade20k_classes.txt"


def _read_names(text: str, source: str) -> list[str]:
    names = [line.strip() for line in text.splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise SegmentationInputError("no class names found", file=source)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise SegmentationInputError(f"duplicate class names {dupes}", file=source)
    return names


def ade20k_class_names() -> list[str]:
    """The 150 ADE20K SceneParsing class names, index 0 = ``wall``."""
    return _read_names(_ADE20K_FILE.read_text("utf-8"), str(_ADE20K_FILE))


def load_class_names(path_or_name: str | Path) -> list[str]:
    """Class names from a built-in set (``"ade20k"``, ``"indoor"``) or a text file.

    A file holds one name per line; blank lines and lines starting with ``#`` are
    skipped. Line order is class index order. A missing, empty or duplicated list
    raises :class:`~caffe2tf.segmentation.errors.SegmentationInputError`.
    """
    key = str(path_or_name)
    if key.lower() == "ade20k":
        return ade20k_class_names()
    if key.lower() == "indoor":
        return list(INDOOR_CLASSES)
    path = Path(path_or_name)
    if not path.is_file():
        raise SegmentationInputError(
            f"no such class-name file (built-in sets: {', '.join(_BUILTIN)})", file=str(path))
    return _read_names(path.read_text("utf-8"), str(path))


def indoor_mapping() -> np.ndarray:
    """``int64[150]``: ADE20K class index -> indoor class index (see module docstring)."""
    ade = ade20k_class_names()
    index = {name: i for i, name in enumerate(ade)}
    other = INDOOR_CLASSES.index("other")
    table = np.full(len(ade), other, dtype=np.int64)
    for group, members in INDOOR_GROUPS.items():
        for name in members:
            table[index[name]] = INDOOR_CLASSES.index(group)
    return table


def remap(labels: np.ndarray, mapping: Sequence[int] | Mapping[int, int] | np.ndarray,
          ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Map every label through ``mapping`` with one lookup-table gather.

    ``mapping`` is a sequence (``mapping[i]`` = new label of ``i``) or a dict.
    ``ignore_index`` always maps to itself; source labels the mapping does not
    cover become ``ignore_index``. Negative labels raise ``ValueError``.
    """
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ValueError(f"remap: negative label {int(labels.min())}")
    if isinstance(mapping, Mapping):
        items = [(int(k), int(v)) for k, v in mapping.items()]
    else:
        items = list(enumerate(int(v) for v in np.asarray(mapping).ravel()))
    top = max([k for k, _ in items] + [ignore_index, int(labels.max()) if labels.size else 0])
    lut = np.full(top + 1, ignore_index, dtype=np.int64)
    for k, v in items:
        lut[k] = v
    lut[ignore_index] = ignore_index
    out = lut[labels]
    max_out = int(lut.max())
    dtype = np.uint8 if max_out <= 255 else np.int32
    return out.astype(dtype)


def ade20k_annotation_to_index(annotation: np.ndarray,
                               ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """ADE20K annotation values (0 = unlabelled, 1..150) -> indices 0..149 / ignore."""
    mapping = {0: ignore_index, **{k: k - 1 for k in range(1, 151)}}
    return remap(annotation, mapping, ignore_index)


def _voc_colour(index: int) -> tuple[int, int, int]:
    r = g = b = 0
    c = index
    for shift in range(7, -1, -1):  # bits 0,1,2 of each triple go to the top bits first
        r |= ((c >> 0) & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return r, g, b


def make_palette(num_classes: int) -> np.ndarray:
    """Deterministic ``uint8[num_classes, 3]`` RGB palette with distinct, non-black rows.

    Class ``i`` gets PASCAL VOC's bit-interleaved colour number ``i + 1`` (VOC's 0 is
    black, which is kept for ignored pixels). The map is injective below 2**24.
    """
    if not 0 <= num_classes < 2 ** 24 - 1:
        raise ValueError(f"make_palette: num_classes must be in [0, 2**24 - 1), "
                         f"received {num_classes}")
    return np.array([_voc_colour(i + 1) for i in range(num_classes)],
                    dtype=np.uint8).reshape(num_classes, 3)
