"""Inputs for the export's check and for int8 calibration: synthetic room photos or the
user's images, preprocessed as ``conversion.json`` records."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from caffe2tf.errors import ExportError
from caffe2tf.model_dir.record import ConversionRecord

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def is_image_input(shape: Sequence[int | None], nchw: bool) -> bool:
    if len(shape) != 4:
        return False
    c = shape[1] if nchw else shape[3]
    h, w = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    return c == 3 and h is not None and w is not None


def image_to_input(image: np.ndarray, shape: Sequence[int | None], nchw: bool, pre) -> np.ndarray:  # noqa: ANN001
    from caffe2tf.segmentation.preprocess import resize_image

    h, w = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    x = pre.to_net_input(resize_image(image, (int(h), int(w))))[None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if nchw else x, dtype=np.float32)


def feeds_from_images(images: Iterable[np.ndarray], inputs: dict, record: ConversionRecord,
                      seed: int) -> Iterator[dict]:
    nchw = record.input_nchw
    pre = record.photo_preprocessing()
    rng = np.random.default_rng(seed)
    for image in images:
        feeds = {}
        for name, info in inputs.items():
            shape = [1] + [d if d is not None else 1 for d in info.shape[1:]]
            if is_image_input(info.shape, nchw):
                feeds[name] = image_to_input(image, info.shape, nchw, pre)
            else:
                feeds[name] = rng.standard_normal(shape).astype(np.float32)
        yield feeds


def synthetic_images(n: int, size: tuple[int, int], seed: int = 0) -> Iterator[np.ndarray]:
    from caffe2tf.segmentation.synthetic import synthetic_room

    for i in range(n):
        yield synthetic_room(size, seed=seed + i)[0]


def images_from_dir(folder: Path, limit: int) -> list[Path]:
    if not folder.is_dir():
        raise ExportError("calibration image folder does not exist", file=str(folder))
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ExportError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the calibration folder", file=str(folder))
    return files[:limit]


def read_images(files: Sequence[Path]) -> Iterator[np.ndarray]:
    from PIL import Image

    for p in files:
        try:
            with Image.open(p) as im:
                yield np.asarray(im.convert("RGB"))
        except Exception as exc:  # noqa: BLE001 - say which file
            raise ExportError(f"cannot read calibration image: {exc}", file=str(p)) from None
