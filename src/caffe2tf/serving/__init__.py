"""``caffe2tf serve``: a TensorFlow-Serving-compatible REST service for a converted model.

* :mod:`caffe2tf.model_dir.served` — the model directory loaded once (SavedModel ``serving_default``);
* :mod:`.rest`    — TF Serving's ``:predict`` row/columnar JSON formats;
* :mod:`.segment` — ``:segment`` on top of :mod:`caffe2tf.segmentation`;
* :mod:`.pool`    — the bounded worker pool (503 beyond the queue);
* :mod:`.metrics` — Prometheus metrics;
* :mod:`.app`     — the Starlette application (routes, limits, the page in ``static/``).

See ``docs/serving.md``. Importing this package is cheap; TensorFlow loads with a model.
"""
from __future__ import annotations

__all__ = ["ServeConfig", "create_app", "load_service_app"]


def __getattr__(name: str):  # noqa: ANN202 - lazy re-exports
    if name in __all__:
        from caffe2tf.serving import app

        return getattr(app, name)
    raise AttributeError(name)
