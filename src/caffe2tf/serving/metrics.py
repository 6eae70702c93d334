"""Prometheus metrics of one service (its own registry, so several apps can coexist)."""
from __future__ import annotations

import re
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from caffe2tf.serving.pool import InferencePool

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_ROUTES = [
    (re.compile(r"^/v1/models/[^/]+(/versions/[^/:]+|/labels/[^/:]+)?:predict$"), "predict"),
    (re.compile(r"^/v1/models/[^/]+(/versions/[^/:]+|/labels/[^/:]+)?:segment$"), "segment"),
    (re.compile(r"^/v1/models/[^/]+(/versions/[^/:]+|/labels/[^/:]+)?:detect$"), "detect"),
    (re.compile(r"^/v1/models/[^/]+(/versions/[^/:]+|/labels/[^/:]+)?/metadata$"), "metadata"),
    (re.compile(r"^/v1/models/[^/:]+(/versions/[^/:]+|/labels/[^/:]+)?$"), "status"),
    (re.compile(r"^/healthz$"), "healthz"),
    (re.compile(r"^/metrics$"), "metrics"),
    (re.compile(r"^/$|^/static/"), "page"),
]


def endpoint_of(path: str) -> str:
    """A bounded label for a path (never the raw path: that would grow without bound)."""
    for pattern, name in _ROUTES:
        if pattern.match(path):
            return name
    return "other"


class ServiceMetrics:
    def __init__(self, pool: InferencePool, model_name: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("caffe2tf_http_requests", "HTTP requests answered, by endpoint and status.",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("caffe2tf_http_request_duration_seconds",
                                 "Time from request start to the end of the response, by endpoint.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("caffe2tf_inference_duration_seconds",
                                   "Time a pool worker spent on one request (decode, model, encode).",
                                   ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.model_time = Histogram("caffe2tf_model_duration_seconds",
                                    "Time spent inside the model for one request.",
                                    ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("caffe2tf_queue_wait_seconds", "Time a request waited for a worker.",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("caffe2tf_rejected_requests", "Requests refused with 503 (pool and queue full).",
                                registry=r)
        Gauge("caffe2tf_queue_depth", "Requests admitted and waiting for a worker.",
              registry=r).set_function(lambda: pool.queue_depth)
        Gauge("caffe2tf_in_flight", "Requests admitted (running + waiting).",
              registry=r).set_function(lambda: pool.in_flight)
        Gauge("caffe2tf_workers", "Size of the worker pool.", registry=r).set(pool.workers)
        Gauge("caffe2tf_queue_capacity", "Requests that may wait beyond the running ones.",
              registry=r).set(pool.queue_size)
        info = Gauge("caffe2tf_model_info", "The served model (value 1).", ["model"], registry=r)
        info.labels(model=model_name).set(1)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI: counts every HTTP response by status and times it (outermost layer)."""

    def __init__(self, app, metrics: ServiceMetrics) -> None:  # noqa: ANN001 - ASGI app
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(scope.get("path", ""))
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(endpoint, scope.get("method", ""), str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
