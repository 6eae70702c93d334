"""How a converted model segments a photo: the setup `segment`, `evaluate`, `finetune`,
`export` and ``serve``'s ``:segment`` share.

:func:`segmentation_setup` reads everything from the model directory: the signature of
the loaded model (:class:`~caffe2tf.model_dir.served.ServedModel`), the tensor layouts,
the preprocessing and the class names from ``conversion.json``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from caffe2tf.model_dir.record import ConversionRecord
from caffe2tf.model_dir.served import ServedModel, Signature
from caffe2tf.segmentation.classes import make_palette
from caffe2tf.model_dir.preprocessing import Preprocessing
from caffe2tf.segmentation.protocol import PSPNET_ADE20K_SINGLE_SCALE

__all__ = ["SegmentationSetup", "default_protocol", "record_layouts", "segmentation_setup"]


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


def default_protocol(crop_size: tuple[int, int]) -> dict:
    """PSPNet's single-scale ADE20K protocol for a 473x473 crop; otherwise one scale with
    the long side equal to the crop, no flip, raw scores (``segment_image``'s defaults)."""
    if tuple(crop_size) == (473, 473):
        return {k: v for k, v in PSPNET_ADE20K_SINGLE_SCALE.items() if k not in ("crop_size", "preprocessing")}
    return {"base_size": max(crop_size), "scales": (1.0,), "flip": False}


def record_layouts(record: ConversionRecord) -> tuple[bool, bool]:
    """(input is NCHW, rank-4 outputs are NCHW) as ``conversion.json`` records them:
    ``input_layout`` is what ``convert --input-layout`` chose; rank-4 outputs are always
    NHWC inside a converted model (``tensor_layout``), so only an explicit
    ``output_layout: "nchw"`` makes them NCHW. Never guessed from tensor shapes."""
    return record.input_nchw, record.output_nchw


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
    nchw, out_nchw = record_layouts(model.record)
    shape = info.shape
    if len(shape) != 4:
        return None, f"its input '{in_name}' has shape {info.shape_text()}, not an image batch"
    h, w, c = (shape[2], shape[3], shape[1]) if nchw else (shape[1], shape[2], shape[3])
    if c != 3 or h is None or w is None:
        return None, f"its input '{in_name}' has shape {info.shape_text()}; :segment needs a fixed-size 3-channel image"
    out_name, num_classes = None, 0
    for name, o in sig.outputs.items():  # the record says the output's layout; its size says which
        if len(o.shape) != 4:
            continue
        oh, ow, oc = (o.shape[2], o.shape[3], o.shape[1]) if out_nchw else (o.shape[1], o.shape[2], o.shape[3])
        if (oh, ow) == (h, w) and oc:
            out_name, num_classes = name, int(oc)
            break
    if out_name is None:
        return None, f"no output has the input's size {h}x{w} (class scores per pixel)"
    try:
        pre = model.record.photo_preprocessing()
    except ValueError as exc:
        return None, str(exc)
    if class_names is None and model.record.class_names:
        class_names = list(model.record.class_names)  # recorded by `convert --classes`
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
