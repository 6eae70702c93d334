"""The ASGI application (Starlette): TF Serving's REST API, ``:segment``, the page,
``/healthz`` and ``/metrics``.

Routes (``NAME`` is the served model's name; ``/versions/1`` may follow it):

=======  =====================================  ==================================================
GET      ``/v1/models/NAME``                    version status (TF Serving's GetModelStatus)
GET      ``/v1/models/NAME/metadata``           signature defs (TF Serving's GetModelMetadata)
POST     ``/v1/models/NAME:predict``            ``{"instances": ...}`` / ``{"inputs": ...}``
POST     ``/v1/models/NAME:segment``            a JPEG/PNG -> JSON, label PNG or overlay PNG
POST     ``/v1/models/NAME:detect``             a JPEG/PNG -> detections JSON or the photo with boxes (PNG)
GET      ``/``                                  the page (``static/``)
GET      ``/healthz``, ``/metrics``             liveness; Prometheus text format
=======  =====================================  ==================================================

Every error is ``{"error": "<one line>"}`` with a 4xx status (5xx only for 503
"busy" and for bugs). Request bodies above ``max_body_bytes`` get 413 before the
model sees them; requests beyond ``workers + queue_size`` in flight get 503 at once.
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from caffe2tf import __version__
from caffe2tf.serving import rest
from caffe2tf.serving.limits import MB, BodyLimitMiddleware, error_response
from caffe2tf.serving.metrics import MetricsMiddleware, ServiceMetrics
from caffe2tf.model_dir.served import MODEL_VERSION, ServedModel
from caffe2tf.serving.pool import InferencePool, OverloadedError
from caffe2tf.serving.rest import RequestError
from caffe2tf.segmentation.setup import SegmentationSetup, segmentation_setup
from caffe2tf.serving.segment import choose_output, run_segment

if TYPE_CHECKING:
    from caffe2tf.detection.setup import DetectionSetup

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class ServeConfig:
    """Limits of the service (the CLI flags of ``caffe2tf serve``)."""

    workers: int = 1
    queue_size: int = 8
    max_body_bytes: int = 20 * MB
    max_image_pixels: int = 50_000_000
    max_batch: int = 16


_MODEL_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<meta>/metadata)|:(?P<verb>[A-Za-z_]+))?$")


class Service:
    """The state behind the routes: the model, its segmentation or detection setup, the pool, metrics."""

    def __init__(self, model: ServedModel, config: ServeConfig, segmentation: SegmentationSetup | None,
                 no_segmentation_reason: str = "", detection: "DetectionSetup | None" = None,
                 no_detection_reason: str = "") -> None:
        self.model = model
        self.config = config
        self.segmentation = segmentation
        self.no_segmentation_reason = no_segmentation_reason
        self.detection = detection
        self.no_detection_reason = no_detection_reason
        self.pool = InferencePool(config.workers, config.queue_size)
        self.metrics = ServiceMetrics(self.pool, model.name)
        self.started = time.time()
        self.page = (STATIC / "index.html").read_bytes()

    # ---- helpers
    async def _in_pool(self, endpoint: str, fn: Callable, *args):  # noqa: ANN202
        try:
            result, waited = await self.pool.run(fn, *args)
        except OverloadedError as exc:
            self.metrics.rejected.inc()
            raise RequestError(503, str(exc), {"Retry-After": "1"}) from None
        self.metrics.queue_wait.observe(waited)
        return result, waited

    @property
    def kind(self) -> str:
        """What the model does with a photo: "detection", "segmentation", or "tensor" (:predict only)."""
        return "detection" if self.detection else "segmentation" if self.segmentation else "tensor"

    def info(self) -> dict:
        seg, det = self.segmentation, self.detection
        return {"status": "ok", "version": __version__,
                "model": {"name": self.model.name, "version": MODEL_VERSION, "backend": self.model.backend,
                          "kind": self.kind,
                          "inputs": {k: list(v.shape) for k, v in self.model.inputs.items()},
                          "outputs": {k: list(v.shape) for k, v in self.model.outputs.items()},
                          "segmentation": seg.describe() if seg else None,
                          "segmentation_unavailable": None if seg else self.no_segmentation_reason,
                          "detection": det.describe() if det else None,
                          "detection_unavailable": None if det else self.no_detection_reason},
                "pool": {"workers": self.pool.workers, "queue_size": self.pool.queue_size,
                         "running": self.pool.running, "queue_depth": self.pool.queue_depth},
                "limits": {"max_body_bytes": self.config.max_body_bytes,
                           "max_image_pixels": self.config.max_image_pixels,
                           "max_batch": self.config.max_batch},
                "uptime_s": round(time.time() - self.started, 1)}

    # ---- routes
    async def page_route(self, request: Request) -> Response:
        return Response(self.page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    async def healthz(self, request: Request) -> Response:
        return Response(json.dumps(self.info()).encode(), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    async def metrics_route(self, request: Request) -> Response:
        body, ctype = self.metrics.exposition()
        return Response(body, media_type=ctype)

    async def models(self, request: Request) -> Response:
        path = request.path_params["rest"]
        m = _MODEL_PATH.match(path)
        method = request.method
        if not m or (m["verb"] and m["meta"]):
            raise RequestError(404, f"Malformed request: {method} {request.url.path}")
        name, version, label, verb = m["name"], m["version"], m["label"], m["verb"]
        if name != self.model.name:
            spec = f"Specific({name}, {version})" if version else f"Latest({name})"
            raise RequestError(404, f"Servable not found for request: {spec}")
        if version is not None and version != MODEL_VERSION:
            raise RequestError(404, f"Servable not found for request: Specific({name}, {version})")
        if label is not None:
            raise RequestError(404, f"Unrecognized servable version label: {label} "
                                    f"(this service serves version {MODEL_VERSION} only)")
        if verb is None:
            if method != "GET":
                raise RequestError(405, f"{method} is not allowed here; use GET", {"Allow": "GET"})
            return self._json(self.model.metadata_json() if m["meta"] else self.model.status_json())
        if method != "POST":
            raise RequestError(405, f"{method} is not allowed for :{verb}; use POST", {"Allow": "POST"})
        if verb in ("predict", "segment", "detect") and self.pool.in_flight >= self.pool.capacity:
            # full already: refuse before parsing anything (the body is read and dropped so the
            # client, still sending, gets the answer instead of a reset connection)
            async for _ in request.stream():
                pass
            self.pool.rejected += 1
            self.metrics.rejected.inc()
            raise RequestError(503, f"server busy: {self.pool.in_flight} request(s) in flight (limit "
                                    f"{self.pool.workers} running + {self.pool.queue_size} queued); retry later",
                               {"Retry-After": "1"})
        if verb == "predict":
            return await self.predict(request)
        if verb == "segment":
            return await self.segment(request)
        if verb == "detect":
            return await self.detect(request)
        if verb in ("classify", "regress"):
            raise RequestError(400, f":{verb} needs a {verb} signature; this model has only predict "
                                    f"signatures (use :predict)")
        raise RequestError(404, f"Malformed request: {method} {request.url.path}")

    @staticmethod
    def _json(doc: dict, status: int = 200) -> Response:
        return Response(json.dumps(doc).encode(), status_code=status, media_type="application/json")

    async def predict(self, request: Request) -> Response:
        body = await request.body()
        model, max_batch = self.model, self.config.max_batch

        def job():  # noqa: ANN202 - runs on a worker
            t0 = time.perf_counter()
            req = rest.parse_predict(body, model, max_batch)
            t1 = time.perf_counter()
            outputs = req.signature.run(req.feeds)
            t2 = time.perf_counter()
            return rest.format_predict(req, outputs), t2 - t1, time.perf_counter() - t0

        (payload, model_s, total_s), waited = await self._in_pool("predict", job)
        self.metrics.model_time.labels("predict").observe(model_s)
        self.metrics.inference.labels("predict").observe(total_s)
        return Response(payload, media_type="application/json",
                        headers={"Server-Timing": _server_timing(model_s, total_s, waited)})

    async def segment(self, request: Request) -> Response:
        if self.segmentation is None:
            raise RequestError(400, f"model '{self.model.name}' is not a segmentation model: "
                                    f"{self.no_segmentation_reason}")
        q = request.query_params
        output = choose_output(q.get("output") or q.get("format"), request.headers.get("accept"))
        try:
            alpha = float(q.get("alpha", 0.5))
            if not 0.0 <= alpha <= 1.0:
                raise ValueError
        except ValueError:
            raise RequestError(400, f"alpha '{q.get('alpha')}' must be a number in [0, 1]") from None
        include_overlay = q.get("include", "").lower() in ("overlay", "overlay_png")
        data = await self._image_bytes(request)
        model, setup, max_px = self.model, self.segmentation, self.config.max_image_pixels
        outcome, waited = await self._in_pool(
            "segment", lambda: run_segment(model, setup, data, output, alpha=alpha,
                                           include_overlay=include_overlay, max_pixels=max_px))
        return self._image_answer("segment", outcome, waited)

    def _image_answer(self, endpoint: str, outcome, waited: float) -> Response:  # noqa: ANN001
        """The answer of an image endpoint (`:segment`, `:detect`), its timings recorded."""
        self.metrics.model_time.labels(endpoint).observe(outcome.model_s)
        self.metrics.inference.labels(endpoint).observe(outcome.total_s)
        headers = dict(outcome.headers)
        headers["Server-Timing"] = _server_timing(outcome.model_s, outcome.total_s, waited)
        return Response(outcome.body, media_type=outcome.media_type, headers=headers)

    async def detect(self, request: Request) -> Response:
        from caffe2tf.serving.detect import choose_detect_output, parse_threshold, run_detect

        if self.detection is None:
            raise RequestError(400, f"model '{self.model.name}' is not a detection model: {self.no_detection_reason}")
        q = request.query_params
        output = choose_detect_output(q.get("format") or q.get("output"), request.headers.get("accept"))
        threshold = parse_threshold(q.get("threshold"), self.detection.threshold)
        include_image = q.get("include", "").lower() in ("image", "image_png", "png")
        data = await self._image_bytes(request)
        model, setup, max_px = self.model, self.detection, self.config.max_image_pixels
        outcome, waited = await self._in_pool(
            "detect", lambda: run_detect(model, setup, data, output, threshold=threshold,
                                         include_image=include_image, max_pixels=max_px))
        return self._image_answer("detect", outcome, waited)

    async def _image_bytes(self, request: Request) -> bytes:
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=1, max_fields=16)
            except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors vary
                raise RequestError(400, f"malformed multipart body: {getattr(exc, 'detail', exc)}") from None
            try:
                uploads = [v for _, v in form.multi_items() if hasattr(v, "read")]
                if not uploads:
                    raise RequestError(400, "the multipart body has no file; upload the image as a file field "
                                            "(e.g. curl -F image=@photo.jpg)")
                return await uploads[0].read()
            finally:
                await form.close()
        return await request.body()


def _server_timing(model_s: float, total_s: float, waited_s: float) -> str:
    return (f"model;dur={1000 * model_s:.2f}, worker;dur={1000 * total_s:.2f}, "
            f"queue;dur={1000 * waited_s:.2f}")


def _guard(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Turn RequestError into its JSON answer and any bug into a logged 500 (never a crash)."""
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except RequestError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except ClientDisconnect:  # the client went away while sending: nobody to answer
            log.info("client disconnected during %s %s", request.method, request.url.path)
            return error_response(400, "client disconnected before the request body was complete")
        except Exception as exc:  # noqa: BLE001 - the service must outlive any request
            log.exception("internal error on %s %s", request.method, request.url.path)
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped


async def _http_exception(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return error_response(404, f"Malformed request: {request.method} {request.url.path}")
    return error_response(exc.status_code, exc.detail or "error", getattr(exc, "headers", None))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error_response(500, f"internal error: {type(exc).__name__}")


def create_app(model: ServedModel, config: ServeConfig | None = None, *,
               segmentation: SegmentationSetup | None | bool = True, no_segmentation_reason: str = "",
               detection: "DetectionSetup | None | bool" = True, detection_class_names: Sequence[str] | None = None,
               **setup_kwargs) -> Starlette:
    """The ASGI app for a loaded model.

    ``segmentation=True`` derives the ``:segment`` setup from the model
    (``setup_kwargs`` go to :func:`segmentation_setup`); ``False``/``None`` disables
    it (``no_segmentation_reason`` says why); a :class:`SegmentationSetup` is used as given.
    ``detection`` likewise for ``:detect`` (:func:`caffe2tf.detection.setup.detection_setup`,
    with ``detection_class_names`` instead of the recorded names when given).
    """
    from caffe2tf.detection.setup import detection_setup

    config = config or ServeConfig()
    reason = no_segmentation_reason
    if segmentation is True:
        segmentation, reason = segmentation_setup(model, **setup_kwargs)
    elif not segmentation:
        segmentation, reason = None, reason or "segmentation is switched off for this service"
    det_reason = ""
    if detection is True:
        detection, det_reason = detection_setup(model, class_names=detection_class_names)
    elif not detection:
        detection, det_reason = None, "detection is switched off for this service"
    service = Service(model, config, segmentation, reason, detection, det_reason)
    routes = [
        Route("/", _guard(service.page_route), methods=["GET"]),
        Route("/healthz", _guard(service.healthz), methods=["GET"]),
        Route("/metrics", _guard(service.metrics_route), methods=["GET"]),
        Route("/v1/models/{rest:path}", _guard(service.models), methods=["GET", "POST"]),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]

    async def lifespan(app):  # noqa: ANN001, ANN202
        yield
        service.pool.shutdown()

    app = Starlette(routes=routes, lifespan=_lifespan_cm(lifespan),
                    exception_handlers={HTTPException: _http_exception, Exception: _internal_error})
    app.state.service = service
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app


def _lifespan_cm(gen_fn):  # noqa: ANN001, ANN202
    from contextlib import asynccontextmanager

    return asynccontextmanager(gen_fn)


def load_service_app(model_dir: str | Path, *, name: str | None = None, config: ServeConfig | None = None,
                     class_names: Sequence[str] | None = None, base_size: int | None = None,
                     scales: Sequence[float] | None = None, flip: bool | None = None,
                     max_side: int = 1024, warm_up: bool = True) -> Starlette:
    """Load ``model_dir`` once and build the app (what ``caffe2tf serve`` runs)."""
    model = ServedModel.load(model_dir, name=name)
    if warm_up:
        log.info("warm-up inference: %.2f s", model.warm_up())
    return create_app(model, config, class_names=class_names, base_size=base_size, scales=scales,
                      flip=flip, max_side=max_side)
