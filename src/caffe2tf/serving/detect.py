"""``:detect``: one photo in, the detections (JSON) or the photo with boxes (PNG) out.

The numbers are :mod:`caffe2tf.detection`'s, the same code ``caffe2tf detect`` runs:
:class:`~caffe2tf.detection.setup.DetectionSetup` (resize to the input, preprocessing
recorded at conversion, the served SavedModel), :func:`detections_from_rows` (pixels of
the photo, threshold, names) and :func:`draw_detections`. This module decodes the upload
(with ``:segment``'s decoder and limits), calls them and encodes the answer.
"""
from __future__ import annotations

import base64
import json
import time

from caffe2tf.detection.draw import box_colour, draw_detections, png_bytes
from caffe2tf.detection.postprocess import detections_from_rows
from caffe2tf.detection.setup import DetectionSetup
from caffe2tf.serving.rest import RequestError
from caffe2tf.serving.segment import SegmentOutcome, decode_image, to_rgb

OUTPUTS = ("json", "png")


def choose_detect_output(query_value: str | None, accept: str | None) -> str:
    """``?format=`` (also ``?output=``) wins; else the Accept header (``image/png`` vs
    ``application/json``, by q-value); else JSON."""
    if query_value:
        v = query_value.strip().lower()
        v = {"image": "png", "boxes": "png", "image/png": "png", "application/json": "json"}.get(v, v)
        if v not in OUTPUTS:
            raise RequestError(400, f"format '{query_value}' is not one of {', '.join(OUTPUTS)}")
        return v
    best, best_q = "json", -1.0
    for part in (accept or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        try:
            q = float(params.get("q", 1))
        except ValueError:
            q = 1.0
        kind = {"application/json": "json", "image/png": "png"}.get(media)
        if kind and q > best_q:
            best, best_q = kind, q
    return best


def parse_threshold(value: str | None, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        t = float(value)
        if not 0.0 <= t <= 1.0:
            raise ValueError
    except ValueError:
        raise RequestError(400, f"threshold '{value}' must be a number in [0, 1]") from None
    return t


def run_detect(model, setup: DetectionSetup, data: bytes, output: str, *, threshold: float,  # noqa: ANN001
               include_image: bool = False, max_pixels: int) -> SegmentOutcome:
    """The whole job of one ``:detect`` request (runs on a pool worker)."""
    t0 = time.perf_counter()
    image = to_rgb(decode_image(data, max_pixels))
    rows, model_s = setup.run(image)
    dets = detections_from_rows(rows, image.shape[:2], threshold=threshold, class_names=setup.class_names)
    if output == "png":
        body, media = png_bytes(draw_detections(image, dets)), "image/png"
        return SegmentOutcome(body, media, model_s, time.perf_counter() - t0, {})
    doc = {
        "model": model.name,
        "width": int(image.shape[1]), "height": int(image.shape[0]),
        "threshold": threshold,
        "detections": [dict(d.to_json(), color=box_colour(d.label)) for d in dets],
        "rows": int(len(rows)),
        "detection": setup.describe(),
    }
    if include_image:
        doc["image_png"] = base64.b64encode(png_bytes(draw_detections(image, dets))).decode("ascii")
    doc["timing_ms"] = {"model": round(1000 * model_s, 2), "total": round(1000 * (time.perf_counter() - t0), 2)}
    return SegmentOutcome(json.dumps(doc).encode(), "application/json", model_s, time.perf_counter() - t0, {})
