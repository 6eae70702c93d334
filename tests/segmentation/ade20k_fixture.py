"""A small ADE20K SceneParsing-format set for the dataset tests (made here, not downloaded).

Synthetic rooms (:mod:`caffe2tf.segmentation.synthetic`, indoor labels) are written as
ADE20K annotations: each indoor class becomes one or two ADE20K classes of its group
(1-based, 0 = unlabelled), with a strip of unlabelled pixels. Five broken samples are
added, one per drop rule.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from caffe2tf.segmentation.classes import INDOOR_CLASSES, INDOOR_GROUPS, ade20k_class_names
from caffe2tf.segmentation.synthetic import synthetic_room

#: expected drop rule per broken sample stem
BROKEN = {"b_unlabelled": "min_labelled", "b_oneclass": "min_classes", "b_tiny": "min_side",
          "b_mismatch": "size mismatch", "b_corrupt": "unreadable"}


def _ade_choices() -> dict[int, list[int]]:
    """indoor class -> ADE20K annotation values (1-based) standing for it."""
    index = {n: i for i, n in enumerate(ade20k_class_names())}
    out = {}
    for k, name in enumerate(INDOOR_CLASSES):
        members = INDOOR_GROUPS.get(name, ("person", "plant"))  # "other": two ungrouped classes
        out[k] = [index[m] + 1 for m in members[:2]]
    return out


def write_ade20k_set(root: Path, n: int = 10, size: int = 96, seed: int = 7) -> Path:
    choices = _ade_choices()
    rng = np.random.default_rng(seed)
    for sub in ("training", "validation"):
        (root / "images" / sub).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / sub).mkdir(parents=True, exist_ok=True)

    def save(sub: str, stem: str, image: np.ndarray, ann: np.ndarray) -> None:
        Image.fromarray(image, "RGB").save(root / "images" / sub / f"{stem}.jpg", quality=95)
        Image.fromarray(ann.astype(np.uint8), "L").save(root / "annotations" / sub / f"{stem}.png")

    for i in range(n):
        image, labels = synthetic_room(size, (seed, i), "indoor")
        ann = np.zeros(labels.shape, np.uint8)
        for k, values in choices.items():
            mask = labels == k
            # alternate rows between the group's first and second ADE20K class
            pick = np.where(np.arange(labels.shape[0])[:, None] % 2 == 0, values[0], values[-1])
            ann[mask] = np.broadcast_to(pick, labels.shape)[mask]
        ann[:, : int(rng.integers(2, 8))] = 0  # an unlabelled strip
        save("training" if i < n - 2 else "validation", f"ADE_{i:04d}", image, ann)
    image, _ = synthetic_room(size, (seed, 99), "indoor")
    ann = np.zeros((size, size), np.uint8)
    ann[:10, :10] = 1
    save("training", "b_unlabelled", image, ann)
    save("training", "b_oneclass", image, np.full((size, size), 1, np.uint8))
    tiny, tiny_labels = synthetic_room(40, (seed, 98), "indoor")
    save("training", "b_tiny", tiny, tiny_labels + 1)
    save("training", "b_mismatch", image, np.ones((size, size + 4), np.uint8))
    (root / "images" / "training" / "b_corrupt.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.ones((size, size), np.uint8), "L").save(root / "annotations" / "training" / "b_corrupt.png")
    return root
