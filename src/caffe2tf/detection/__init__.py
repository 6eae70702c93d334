"""Object detection with converted SSD-style models (a ``DetectionOutput`` layer).

* :mod:`.setup`       — find the detection output of a converted model, the input size and
  the preprocessing recorded in ``conversion.json``, the class names; run one photo;
* :mod:`.postprocess` — Caffe's ``[image, label, score, xmin, ymin, xmax, ymax]`` rows ->
  :class:`Detection` records in the photo's pixel coordinates (raw normalised values kept);
* :mod:`.draw`        — boxes, labels and scores drawn on the photo (Pillow).

Used by ``caffe2tf detect`` and by ``caffe2tf serve`` (``:detect`` and the page).
"""
from __future__ import annotations

from caffe2tf.detection.postprocess import Detection, detections_from_rows, rows_from_output

__all__ = ["Detection", "detections_from_rows", "rows_from_output"]
