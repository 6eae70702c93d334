"""``:segment``: one photo in, a label map / colour overlay / class summary out.

Everything that decides the numbers is the segmentation package's:
:func:`caffe2tf.segmentation.protocol.segment_image` (resize, preprocessing,
sliding windows, flip, score averaging), the :class:`Preprocessing` recorded at
conversion, and :mod:`caffe2tf.segmentation.visualize` (palette colours, overlay
blending, legend shares). This module only decodes the upload, calls them with
the served model as ``logits_fn`` and encodes the answer.
"""
from __future__ import annotations

import base64
import io
import logging
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from caffe2tf.errors import RequestError
from caffe2tf.model_dir.served import ServedModel
from caffe2tf.segmentation import visualize
from caffe2tf.segmentation.preprocess import resize_image, scaled_size
from caffe2tf.segmentation.protocol import segment_image
from caffe2tf.segmentation.setup import SegmentationSetup

log = logging.getLogger(__name__)

OUTPUTS = ("json", "labels", "overlay")
IMAGE_FORMATS = ("JPEG", "PNG")


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open a JPEG or PNG upload (header only); raises RequestError 400/413."""
    if not data:
        raise RequestError(400, "empty body: send a JPEG or PNG image (raw bytes or a multipart upload)")
    try:
        im = Image.open(io.BytesIO(data))
        fmt = im.format
        w, h = im.size
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"image too large: {exc}") from None
    except Image.UnidentifiedImageError:
        raise RequestError(400, "not an image: the body is neither JPEG nor PNG data") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad upload
        raise RequestError(400, f"not a readable image: {type(exc).__name__}: {exc}") from None
    if fmt not in IMAGE_FORMATS:
        raise RequestError(400, f"unsupported image format {fmt}; send JPEG or PNG")
    if w * h > max_pixels:
        raise RequestError(413, f"image is {w}x{h} = {w * h} pixels; this service takes at most {max_pixels}")
    return im


def to_rgb(im: Image.Image) -> np.ndarray:
    """Decode fully to RGB uint8 (greyscale, palette and alpha converted, as `caffe2tf segment`)."""
    try:
        return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise RequestError(400, f"not a readable image: {type(exc).__name__}: {exc}") from None


@dataclass
class SegmentOutcome:
    body: bytes
    media_type: str
    model_s: float
    total_s: float
    headers: dict[str, str]


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def label_png_bytes(labels: np.ndarray) -> bytes:
    """The label map as ``write_label_png`` stores it: 8-bit greyscale below 256 classes, else 16-bit."""
    if labels.size and int(labels.max()) > 255:
        return png_bytes(labels.astype(np.uint16))
    return png_bytes(labels.astype(np.uint8), "L")


def run_segment(model: ServedModel, setup: SegmentationSetup, data: bytes, output: str, *,
                alpha: float = 0.5, include_overlay: bool = False, max_pixels: int) -> SegmentOutcome:
    """The whole job of one ``:segment`` request (runs on a pool worker)."""
    t0 = time.perf_counter()
    image = to_rgb(decode_image(data, max_pixels))
    original = image.shape[:2]
    if max(original) > setup.max_side:
        image = resize_image(image, scaled_size(original[0], original[1], setup.max_side))
    model_s = [0.0]
    labels = segment_image(image, setup.logits_fn(model_s), **setup.protocol_kwargs()).labels
    if setup.to_output_classes is not None:
        labels = setup.to_output_classes(labels)
    headers = {}
    if image.shape[:2] != original:
        headers["X-Caffe2tf-Resized-From"] = f"{original[1]}x{original[0]}"
    if output == "labels":
        body, media = label_png_bytes(labels), "image/png"
    elif output == "overlay":
        body, media = png_bytes(visualize.overlay(image, labels, setup.palette, alpha=alpha, ignore_index=None), "RGB"), "image/png"
    else:
        entries = visualize.legend(labels, setup.class_names, setup.palette, ignore_index=None)
        doc = {
            "model": model.name,
            "width": int(labels.shape[1]), "height": int(labels.shape[0]),
            "original_size": {"width": int(original[1]), "height": int(original[0])},
            "classes": [{"index": e.index, "name": e.name, "color": "#%02x%02x%02x" % e.colour,
                         "share": round(e.share, 6)} for e in entries],
            "protocol": setup.describe(),
        }
        if include_overlay:
            overlay_png = png_bytes(visualize.overlay(image, labels, setup.palette, alpha=alpha, ignore_index=None), "RGB")
            doc["overlay_png"] = base64.b64encode(overlay_png).decode("ascii")
        total = time.perf_counter() - t0
        doc["timing_ms"] = {"model": round(1000 * model_s[0], 2), "total": round(1000 * total, 2)}
        import json

        body, media = json.dumps(doc).encode(), "application/json"
    return SegmentOutcome(body, media, model_s[0], time.perf_counter() - t0, headers)


def choose_output(query_value: str | None, accept: str | None) -> str:
    """``?output=`` (also ``?format=``) wins; else the Accept header; else JSON."""
    if query_value:
        v = query_value.strip().lower()
        aliases = {"label": "labels", "png": "labels", "labelmap": "labels", "label_map": "labels"}
        v = aliases.get(v, v)
        if v not in OUTPUTS:
            raise RequestError(400, f"output '{query_value}' is not one of {', '.join(OUTPUTS)}")
        return v
    best, best_q = "json", -1.0
    for i, part in enumerate((accept or "").split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        try:
            q = float(params.get("q", 1))
        except ValueError:
            q = 1.0
        kind = None
        if media == "application/json":
            kind = "json"
        elif media == "image/png":
            kind = "overlay" if params.get("content", "").lower() == "overlay" else "labels"
        if kind and q > best_q:
            best, best_q = kind, q
    return best
