"""Helpers shared by the serving tests (imported by name: pytest puts this folder on sys.path)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mini_pspnet"
PSPNET_MEAN_BGR = (103.939, 116.779, 123.68)
LIVE_WORKERS, LIVE_QUEUE = 1, 3  # the live service's --workers and --queue-size (capacity 4)


from caffe2tf.segmentation.classes import load_class_names

INDOOR_CLASSES = load_class_names("indoor")


def converted_example(base: Path) -> Path:
    """examples/mini_pspnet converted (with PSPNet's mean) under ``base``, once per test session."""
    out = base / "mini_pspnet_model"
    if (out / "conversion.json").is_file():
        return out
    from caffe2tf.pipeline import Preprocessing, convert

    convert(EXAMPLE / "deploy.prototxt", EXAMPLE / "weights.caffemodel", out, force=True,
            preprocessing=Preprocessing(mean=PSPNET_MEAN_BGR, scale=1.0, bgr=True),
            class_names=INDOOR_CLASSES)
    return out


def encode(image: np.ndarray, fmt: str = "JPEG") -> bytes:
    """An RGB uint8 image as JPEG or PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()
