"""How a converted SSD-style model detects objects in a photo.

A *detection model* is a converted model one of whose outputs is the top of a Caffe
``DetectionOutput`` layer (``conversion.json`` lists every layer with its type and the
net's outputs), with one fixed-size 3-channel image input. Its setup is read from the
conversion record:

* preprocessing: the mean, scale and channel order recorded by ``convert --mean --scale
  --bgr/--rgb`` (the photo is resized to the input size first, as SSD does: no aspect
  ratio kept, so the network's normalised boxes map straight onto the photo);
* class names: recorded by ``convert --classes FILE``. A list with one name per class
  (background included) is indexed by label; a list one shorter (just the objects, e.g.
  ``face``) gets ``background`` inserted at the background label;
* ``num_classes`` and ``background_label_id`` come from the prototxt the record names
  when it is still there, else ``num_classes`` from the layer's input shapes and the
  background label defaults to 0 (Caffe's default).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from caffe2tf.detection.postprocess import Detection, detections_from_rows, rows_from_output
from caffe2tf.model_dir.preprocessing import Preprocessing
from caffe2tf.model_dir.record import ConversionRecord, LayerRecord
from caffe2tf.segmentation.preprocess import resize_image

log = logging.getLogger(__name__)

__all__ = ["DetectionSetup", "DetectionResult", "detection_setup", "detection_layer"]

DETECTION_TYPE = "DetectionOutput"


@dataclass
class DetectionResult:
    detections: list[Detection]
    rows: np.ndarray  # float32 [rows, 7], as the model wrote them (all images, unfiltered)
    image_size: tuple[int, int]  # (height, width) of the photo
    model_s: float


@dataclass
class DetectionSetup:
    """Everything needed to run the served model on one photo (fixed at start-up)."""

    signature: object  # caffe2tf.model_dir.served.Signature
    input_name: str
    output_name: str
    input_size: tuple[int, int]  # (height, width) of the network input
    preprocessing: Preprocessing
    class_names: list[str]
    layer: str  # the DetectionOutput layer
    num_classes: int | None = None
    background_label: int | None = 0
    nchw: bool = False
    threshold: float = 0.5
    notes: list[str] = field(default_factory=list)

    def net_input(self, image_rgb: np.ndarray) -> np.ndarray:
        """``uint8 [H, W, 3]`` RGB photo -> the model's ``[1, ...]`` input."""
        x = self.preprocessing.to_net_input(resize_image(np.asarray(image_rgb, dtype=np.uint8), self.input_size))
        x = x[None]
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.nchw else x)

    def run(self, image_rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """(the model's rows ``float32 [rows, 7]``, seconds in the model)."""
        x = self.net_input(image_rgb)
        t0 = time.perf_counter()
        out = self.signature.run({self.input_name: x})[self.output_name]
        return rows_from_output(out), time.perf_counter() - t0

    def detect(self, image_rgb: np.ndarray, threshold: float | None = None) -> DetectionResult:
        rows, model_s = self.run(image_rgb)
        size = tuple(np.asarray(image_rgb).shape[:2])
        dets = detections_from_rows(rows, size, threshold=self.threshold if threshold is None else threshold,
                                    class_names=self.class_names)
        return DetectionResult(dets, rows, size, model_s)  # type: ignore[arg-type]

    def describe(self) -> dict:
        p = self.preprocessing
        return {"layer": self.layer, "input_size": list(self.input_size), "num_classes": self.num_classes,
                "background_label": self.background_label, "class_names": list(self.class_names),
                "threshold": self.threshold,
                "preprocessing": {"mean_rgb": list(p.mean_rgb), "scale": p.scale, "bgr": p.bgr,
                                  "resize": f"{self.input_size[1]}x{self.input_size[0]} (aspect ratio not kept)"}}


def detection_layer(record: ConversionRecord) -> LayerRecord | None:
    """The record's ``DetectionOutput`` layer whose top is a net output, if any."""
    outputs = {o.blob for o in record.outputs}
    for layer in record.layers:
        if layer.type == DETECTION_TYPE and any(t in outputs for t in layer.tops):
            return layer
    return None


def _params_from_prototxt(record: ConversionRecord, layer_name: str) -> tuple[int, int] | None:
    """(num_classes, background_label_id) from the prototxt the record names, if readable."""
    path = record.source.prototxt
    if not path or not Path(path).is_file():
        return None
    try:
        from caffe2tf.frontend.prototxt import parse_prototxt

        net = parse_prototxt(path, allow_unknown_fields=True).net
    except Exception as exc:  # noqa: BLE001 - the prototxt is a nicety here; shapes still work
        log.debug("could not read %s for DetectionOutput parameters: %s", path, exc)
        return None
    for layer in net.layer:
        if layer.name == layer_name and layer.HasField("detection_output_param"):
            p = layer.detection_output_param
            return int(p.num_classes), int(p.background_label_id)
    return None


def _num_classes_from_shapes(record: ConversionRecord, layer: LayerRecord) -> int | None:
    """C from the confidence bottom ``[N, P*C]`` and the prior bottom ``[1, 2, P*4]``."""
    shapes = {}
    for entry in record.layers:
        for top, shape in zip(entry.tops, entry.shapes):
            shapes[top] = shape
    bottoms = layer.bottoms
    if len(bottoms) < 3 or bottoms[1] not in shapes or bottoms[2] not in shapes:
        return None
    conf, prior = shapes[bottoms[1]], shapes[bottoms[2]]
    if len(prior) != 3 or not conf or not prior[2] or prior[2] % 4:
        return None
    priors = prior[2] // 4
    per_image = int(np.prod(conf[1:]))
    return per_image // priors if per_image % priors == 0 else None


def _full_class_names(names: Sequence[str] | None, num_classes: int | None, background: int | None) -> list[str]:
    if names is None:
        if num_classes is None:
            return []
        return ["background" if i == background else f"class {i}" for i in range(num_classes)]
    names = list(names)
    if num_classes is not None and len(names) == num_classes - 1 and background is not None \
            and 0 <= background < num_classes:
        names.insert(background, "background")
    return names


def detection_setup(model, *, class_names: Sequence[str] | None = None,  # noqa: ANN001 - ServedModel
                    threshold: float = 0.5) -> tuple[DetectionSetup | None, str]:
    """(setup, "") when ``model`` (a :class:`~caffe2tf.model_dir.served.ServedModel`) detects
    objects, else (None, why not)."""
    from caffe2tf.segmentation.setup import record_layouts

    record = model.record
    layer = detection_layer(record)
    if layer is None:
        return None, f"none of its outputs comes from a {DETECTION_TYPE} layer"
    sig = model.default
    if len(sig.inputs) != 1:
        return None, f"it has {len(sig.inputs)} inputs; detection needs one image input"
    (in_name, info), = sig.inputs.items()
    shape = info.shape
    nchw, _ = record_layouts(record)  # the layouts conversion.json records, as segmentation reads them
    if len(shape) != 4:
        return None, f"its input '{in_name}' has shape {info.shape_text()}, not an image batch"
    h, w, c = (shape[2], shape[3], shape[1]) if nchw else (shape[1], shape[2], shape[3])
    if c != 3 or h is None or w is None:
        return None, f"its input '{in_name}' has shape {info.shape_text()}; detection needs a fixed-size " \
                     f"3-channel image"
    blobs = [o.blob for o in record.outputs]
    index = next(i for i, b in enumerate(blobs) if b in layer.tops)
    out_name = f"output_{index}" if f"output_{index}" in sig.outputs else None
    if out_name is None and len(sig.outputs) == 1:
        out_name = next(iter(sig.outputs))
    if out_name is None:
        return None, f"cannot tell which signature output holds '{blobs[index]}' (outputs: {sorted(sig.outputs)})"
    notes = []
    if not (record.preprocessing and record.preprocessing.mean):
        notes.append("conversion.json records no mean: using the ImageNet mean (convert with --mean to set it)")
    try:
        pre = record.photo_preprocessing()
    except ValueError as exc:
        return None, str(exc)
    params = _params_from_prototxt(record, layer.name)
    if params is not None:
        num_classes, background = params
    else:
        num_classes, background = _num_classes_from_shapes(record, layer), 0
    if class_names is None and record.class_names:
        class_names = record.class_names  # recorded by `convert --classes`
    names = _full_class_names(class_names, num_classes, background)
    if num_classes is not None and names and len(names) < num_classes:
        notes.append(f"{len(names)} class names for {num_classes} classes: the others are named 'class N'")
    for note in notes:
        log.warning("%s: %s", model.name, note)
    setup = DetectionSetup(signature=sig, input_name=in_name, output_name=out_name, input_size=(int(h), int(w)),
                           preprocessing=pre, class_names=names, layer=layer.name, num_classes=num_classes,
                           background_label=background, nchw=nchw, threshold=threshold, notes=notes)
    return setup, ""
