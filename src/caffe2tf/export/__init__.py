"""``caffe2tf export``: TFLite export of a converted model, checked against its SavedModel
(:mod:`caffe2tf.export.tflite`)."""
from __future__ import annotations

__all__ = ["export_tflite", "ExportError", "TFLiteReport", "QUANTIZE_MODES"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: importing the package does not load TensorFlow
    if name in __all__:
        from caffe2tf.export import tflite

        return getattr(tflite, name)
    raise AttributeError(name)
