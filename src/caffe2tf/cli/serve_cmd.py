"""`caffe2tf serve`: TF-Serving-compatible REST API, `:segment` and a web page for a converted model."""
from __future__ import annotations

import logging
import os
import socket

import click

from caffe2tf.cli._segmentation import protocol_options
from caffe2tf.errors import Caffe2TFError

log = logging.getLogger(__name__)


class ServeError(Caffe2TFError):
    pass


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv4 or IPv6 by the host's form); port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def load_for_serving(model_dir: str, *, name: str | None, max_side: int, **protocol):  # noqa: ANN201
    """(ServedModel, SegmentationSetup | None, why not) with `segment`'s own loading code.

    ``protocol``: ``mean, scale, bgr, base_size, scales, flip, classes`` as `caffe2tf segment`
    takes them; a model that does not segment is still served (``:predict`` only).
    """
    from caffe2tf.cli._segmentation import load_segmenter
    from caffe2tf.model_dir.served import ServedModel, check_model_name
    from caffe2tf.segmentation.errors import NotASegmenterError

    try:
        seg = load_segmenter(model_dir, **protocol)
    except NotASegmenterError as exc:  # still served: :predict only
        model, setup, why = ServedModel.load(model_dir), None, exc.reason
    else:
        model, setup, why = seg.model, seg.setup, ""
        setup.max_side = max_side
        if seg.num_output_classes != setup.num_classes or list(seg.class_names) != list(setup.class_names):
            setup.set_output_classes(seg.to_output_classes, seg.class_names)  # e.g. ADE20K -> indoor
    if name:
        model.name = check_model_name(name)
    return model, setup, why


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 exposes the service to the network).")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (TF Serving's REST port is 8501); 0 picks a free one.")
@click.option("--name", help="Model name in the URLs (/v1/models/NAME). Default: the Caffe net's name.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Inference worker threads (requests run at the same time).")
@click.option("--queue-size", default=8, show_default=True, type=click.IntRange(0, 10000),
              help="Requests that may wait for a worker; beyond that the service answers 503 at once.")
@click.option("--max-body-mb", default=20.0, show_default=True, type=click.FloatRange(0.001, 4096),
              help="Largest request body in MB (1 MB = 2**20 bytes); larger ones get 413.")
@click.option("--max-image-megapixels", default=50.0, show_default=True, type=click.FloatRange(0.001, 1000),
              help="Largest decoded image for :segment; larger ones get 413.")
@click.option("--max-batch", default=16, show_default=True, type=click.IntRange(1, 100000),
              help="Most examples in one :predict request.")
@click.option("--max-side", default=1024, show_default=True, type=click.IntRange(16, 100000),
              help=":segment first shrinks photos whose long side exceeds this (bounds memory: the protocol "
                   "keeps per-class scores at the photo's size).")
@protocol_options
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True, help="uvicorn's log level (access log at info).")
def serve(model_dir: str, host: str, port: int, name: str | None, workers: int, queue_size: int,
          max_body_mb: float, max_image_megapixels: float, max_batch: int, max_side: int, mean: str | None,
          scale: float | None, bgr: bool | None, base_size: int | None, scales: str | None, flip: bool | None,
          classes: str | None, log_level: str) -> None:
    """Serve a converted model over HTTP (TensorFlow Serving's REST API, plus a page).

    \b
      GET  /v1/models/NAME             version status
      GET  /v1/models/NAME/metadata    signature_def
      POST /v1/models/NAME:predict     {"instances": [...]} or {"inputs": ...}
      POST /v1/models/NAME:segment     a JPEG/PNG -> JSON | label PNG | overlay PNG
      POST /v1/models/NAME:detect      a JPEG/PNG -> detections JSON | PNG with boxes
      GET  /                           upload a photo, see the overlay and the classes found
      GET  /healthz, /metrics          liveness; Prometheus metrics

    The model is loaded once; inference runs on --workers threads with at most
    --queue-size requests waiting (503 beyond). :segment uses `caffe2tf segment`'s
    preprocessing and protocol (same options). Binds 127.0.0.1 unless told otherwise.
    See docs/serving.md, also for running TensorFlow Serving on the same directory.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ chatter
    try:
        import uvicorn
    except ImportError:
        raise ServeError("caffe2tf serve needs the 'app' extra: pip install 'caffe2tf[app]'") from None
    from caffe2tf.serving.app import ServeConfig, create_app

    file_names = None  # a class-name file also names a detection model's labels
    if classes and classes.lower() not in ("ade20k", "indoor"):
        from caffe2tf.segmentation.classes import load_class_names

        try:
            file_names = load_class_names(classes)
        except (OSError, ValueError) as exc:
            raise ServeError(str(exc), file=classes) from None
    config = ServeConfig(workers=workers, queue_size=queue_size, max_body_bytes=int(max_body_mb * 2 ** 20),
                         max_image_pixels=int(max_image_megapixels * 1e6), max_batch=max_batch)
    sock = bind_socket(host, port)  # before loading: a taken port fails fast
    try:
        model, setup, why = load_for_serving(model_dir, name=name, max_side=max_side, mean=mean, scale=scale,
                                             bgr=bgr, base_size=base_size, scales=scales, flip=flip,
                                             classes=classes)
        log.info("warm-up inference: %.2f s", model.warm_up())
        app = create_app(model, config, segmentation=setup or False, no_segmentation_reason=why,
                         detection_class_names=file_names)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"http://{shown}:{bound_port}"
        seg = "" if setup or app.state.service.detection else f" (no :segment: {why})"
        click.echo(f"serving '{model.name}' from {model_dir} on {url}{seg}")
        click.echo(f"  page {url}/   REST {url}/v1/models/{model.name}   workers {workers}, queue {queue_size}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("listening on %s: reachable from other machines", host)
        # the pool bounds inference; uvicorn's own limit bounds open connections/requests as a backstop
        limit = max(64, 8 * (workers + queue_size))
        server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, limit_concurrency=limit,
                                               timeout_keep_alive=5, timeout_graceful_shutdown=5,
                                               server_header=False))
        server.run(sockets=[sock])
    finally:
        sock.close()
