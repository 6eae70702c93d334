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
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from caffe2tf.segmentation import visualize
from caffe2tf.segmentation.classes import make_palette
from caffe2tf.segmentation.preprocess import (PSPNET_PREPROCESSING, Preprocessing, resize_image,
                                              scaled_size)
from caffe2tf.segmentation.protocol import PSPNET_ADE20K_SINGLE_SCALE, segment_image
from caffe2tf.model_dir.served import ServedModel, Signature
from caffe2tf.serving.rest import RequestError

log = logging.getLogger(__name__)

OUTPUTS = ("json", "labels", "overlay")
IMAGE_FORMATS = ("JPEG", "PNG")


@dataclass
class SegmentationSetup:
    """How the served model segments a photo (fixed at start-up)."""

    signature: Signature
    input_name: str
    output_name: str
    crop_size: tuple[int, int]
    num_classes: int
    class_names: list[str]
    palette: np.ndarray
    preprocessing: Preprocessing
    protocol: dict = field(default_factory=dict)  # base_size, scales, flip, softmax, long_side_offset
    nchw: bool = False  # the input is NCHW
    out_nchw: bool = False  # the score output is NCHW
    max_side: int = 1024
    #: model labels -> reported labels (e.g. ADE20K -> the ten indoor classes); class_names
    #: and palette then describe the reported classes
    to_output_classes: Callable[[np.ndarray], np.ndarray] | None = None

    def logits_fn(self, timer: list[float] | None = None) -> Callable[[np.ndarray], np.ndarray]:
        """``segment_image``'s ``logits_fn``: NHWC crops in, NHWC scores out, whatever the
        model's layouts; adds the seconds spent in the model to ``timer[0]``."""
        sig, name, out_name = self.signature, self.input_name, self.output_name
        nchw, out_nchw = self.nchw, self.out_nchw

        def run(batch: np.ndarray) -> np.ndarray:
            t = time.perf_counter()
            x = batch.transpose(0, 3, 1, 2) if nchw else batch
            out = sig.run({name: np.ascontiguousarray(x, dtype=np.float32)})[out_name]
            if timer is not None:
                timer[0] += time.perf_counter() - t
            return out.transpose(0, 2, 3, 1) if out_nchw else out
        return run

    def protocol_kwargs(self) -> dict:
        """Keyword arguments of ``segment_image`` (besides the image and ``logits_fn``)."""
        return dict(crop_size=self.crop_size, num_classes=self.num_classes, preprocessing=self.preprocessing,
                    **self.protocol)

    def set_output_classes(self, to_output_classes: Callable[[np.ndarray], np.ndarray],
                           class_names: Sequence[str]) -> None:
        """Report labels mapped by ``to_output_classes`` and named by ``class_names``."""
        self.to_output_classes = to_output_classes
        self.class_names = list(class_names)
        self.palette = make_palette(len(self.class_names))

    def describe(self) -> dict:
        return {"crop_size": list(self.crop_size), "num_classes": self.num_classes,
                "output_classes": len(self.class_names),
                "base_size": self.protocol.get("base_size"), "scales": list(self.protocol.get("scales", (1.0,))),
                "flip": bool(self.protocol.get("flip", False)), "softmax": bool(self.protocol.get("softmax", False)),
                "max_side": self.max_side,
                "preprocessing": {"mean_rgb": list(self.preprocessing.mean_rgb), "scale": self.preprocessing.scale,
                                  "bgr": self.preprocessing.bgr}}


def preprocessing_from_record(record: dict) -> Preprocessing:
    """The :class:`Preprocessing` that ``conversion.json`` records.

    The record keeps the mean in the net's channel order (BGR for ``bgr``); a record
    without a mean means PSPNet's ImageNet mean (what Caffe segmentation nets expect).
    """
    pre = record.get("preprocessing") or {}
    bgr = bool(pre.get("bgr", True))
    scale = float(pre.get("scale", 1.0) or 1.0)
    mean = pre.get("mean")
    if mean is None:
        return Preprocessing(mean_rgb=PSPNET_PREPROCESSING.mean_rgb, scale=scale, bgr=bgr)
    if len(mean) != 3:
        raise ValueError(f"the recorded mean has {len(mean)} values; a photo has 3 channels")
    mean_rgb = tuple(float(m) for m in (mean[::-1] if bgr else mean))
    return Preprocessing(mean_rgb=mean_rgb, scale=scale, bgr=bgr)


def default_protocol(crop_size: tuple[int, int]) -> dict:
    """PSPNet's single-scale ADE20K protocol for a 473x473 crop; otherwise one scale with
    the long side equal to the crop, no flip, raw scores (``segment_image``'s defaults)."""
    if tuple(crop_size) == (473, 473):
        return {k: v for k, v in PSPNET_ADE20K_SINGLE_SCALE.items() if k not in ("crop_size", "preprocessing")}
    return {"base_size": max(crop_size), "scales": (1.0,), "flip": False}


def segmentation_setup(model: ServedModel, *, class_names: Sequence[str] | None = None,
                       base_size: int | None = None, scales: Sequence[float] | None = None,
                       flip: bool | None = None, max_side: int = 1024) -> tuple[SegmentationSetup | None, str]:
    """(setup, "") when the model segments photos, else (None, why not).

    A segmentation model has one rank-4 image input with 3 channels and a rank-4
    output with the input's height and width (the class scores).
    """
    sig = model.default
    if len(sig.inputs) != 1:
        return None, f"it has {len(sig.inputs)} inputs; :segment needs one image input"
    (in_name, info), = sig.inputs.items()
    nchw = model.record.get("input_layout") == "nchw"
    shape = info.shape
    if len(shape) != 4:
        return None, f"its input '{in_name}' has shape {info.shape_text()}, not an image batch"
    if (shape[1] if nchw else shape[3]) != 3 and (shape[3] if nchw else shape[1]) == 3:
        nchw = not nchw  # the record does not say (or says otherwise): the shape does
    h, w, c = (shape[2], shape[3], shape[1]) if nchw else (shape[1], shape[2], shape[3])
    if c != 3 or h is None or w is None:
        return None, f"its input '{in_name}' has shape {info.shape_text()}; :segment needs a fixed-size 3-channel image"
    out_name, num_classes, out_nchw = None, 0, False
    for name, o in sig.outputs.items():  # the layout of the output is read from its shape
        if len(o.shape) != 4:
            continue
        if tuple(o.shape[1:3]) == (h, w) and o.shape[3]:
            out_name, num_classes, out_nchw = name, int(o.shape[3]), False
            break
        if tuple(o.shape[2:4]) == (h, w) and o.shape[1]:
            out_name, num_classes, out_nchw = name, int(o.shape[1]), True
            break
    if out_name is None:
        return None, f"no output has the input's size {h}x{w} (class scores per pixel)"
    try:
        pre = preprocessing_from_record(model.record)
    except ValueError as exc:
        return None, str(exc)
    if class_names is None and model.record.get("class_names"):
        class_names = list(model.record["class_names"])  # recorded by `convert --classes`
    if class_names is None:
        if num_classes == 150:
            from caffe2tf.segmentation.classes import ade20k_class_names

            class_names = ade20k_class_names()
        else:
            class_names = [f"class {i}" for i in range(num_classes)]
    class_names = list(class_names)
    if len(class_names) < num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} classes")
    protocol = default_protocol((h, w))
    if base_size is not None:
        protocol["base_size"] = int(base_size)
    if scales is not None:
        protocol["scales"] = tuple(float(s) for s in scales)
    if flip is not None:
        protocol["flip"] = bool(flip)
    setup = SegmentationSetup(signature=sig, input_name=in_name, output_name=out_name, crop_size=(h, w),
                              num_classes=num_classes, class_names=class_names[:num_classes],
                              palette=make_palette(num_classes), preprocessing=pre, protocol=protocol,
                              nchw=nchw, out_nchw=out_nchw, max_side=max_side)
    return setup, ""


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
