"""Batch inference over large image sets on Ray Data (``segment``/``evaluate --engine ray``).

The pipeline is ``from_items(rows) -> map(decode) -> map_batches(actor pool)``:

- the decode stage (Ray tasks, ``read_cpus`` each) reads the image (and label) files
  into arrays, so reading overlaps with inference;
- the inference stage is an :class:`~ray.data.ActorPoolStrategy` pool of ``actors``
  actors; each calls ``make_worker()`` once in its constructor (the converted model
  is loaded once per actor) and then ``worker(rows) -> rows`` for every batch;
- the driver iterates the results as they arrive (``on_row``, e.g. a progress bar).

The numbers come from the same functions the local path uses (the worker calls
:func:`~caffe2tf.segmentation.protocol.segment_image` on the same decoded arrays),
so only *where* it runs changes. ``evaluate`` workers return one confusion matrix
per batch (integer counts); summing them gives exactly the local matrix, because
integer addition is associative.

Ray is an optional extra (``pip install 'caffe2tf[ray]'``). :func:`ensure_ray`
joins the cluster named by ``address`` (or ``RAY_ADDRESS``), reuses a Ray already
initialised in this process, or starts a local one.

Resources: with ``actors * cpus_per_actor`` equal to all the cluster's CPUs the
decode tasks could never be scheduled, so the default leaves one CPU for reading.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from caffe2tf.errors import Caffe2TFError

__all__ = ["RayUnavailableError", "ensure_ray", "run_pipeline", "default_actors", "sum_confusion"]

log = logging.getLogger(__name__)


class RayUnavailableError(Caffe2TFError):
    """``--engine ray`` without Ray installed."""


def _ray():  # noqa: ANN202 - the ray module
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayUnavailableError("--engine ray needs Ray Data: pip install 'caffe2tf[ray]'") from None
    return ray


def ensure_ray(address: str | None = None) -> None:
    """Connect to ``address`` / ``RAY_ADDRESS``, reuse this process's Ray, or start a local one."""
    ray = _ray()
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)
    log.info("ray resources: %s", ray.cluster_resources())


def default_actors(cpus_per_actor: float) -> int:
    """Actors that fit the cluster's CPUs with one CPU left for decoding (at least 1)."""
    ray = _ray()
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1, int((cpus - 1) // cpus_per_actor)) if cpus > 1 else 1


class _Actor:
    """The actor-pool stage: builds the worker once, runs it on every batch."""

    def __init__(self, make_worker: Callable[[], Callable[[list[dict]], list[dict]]]) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.worker = make_worker()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        keys = list(batch)
        n = len(batch[keys[0]]) if keys else 0
        rows = [{k: batch[k][i] for k in keys} for i in range(n)]
        out = self.worker(rows)
        if not out:
            return {}
        return {k: [r[k] for r in out] for k in out[0]}


def _unwrap(exc: BaseException) -> BaseException | None:
    """The Caffe2TFError a Ray task raised, if any (Ray wraps task exceptions)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, Caffe2TFError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return None


def run_pipeline(rows: list[dict], decode: Callable[[dict], dict],
                 make_worker: Callable[[], Callable[[list[dict]], list[dict]]], *,
                 actors: int | None = None, cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0,
                 batch_size: int = 4, read_cpus: float = 0.25,
                 on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Run ``rows`` through decode -> actor pool (module docstring); returns the output rows."""
    ray = _ray()
    if not rows:
        return []
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the caller shows one bar over images
    n_actors = actors or default_actors(cpus_per_actor)
    n_actors = max(1, min(n_actors, len(rows)))
    log.info("ray: %d rows, %d actor(s) x %g CPU / %g GPU, batch %d", len(rows), n_actors, cpus_per_actor,
             gpus_per_actor, batch_size)
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), max(2 * n_actors, 1) * 4))
    ds = ds.map(decode, num_cpus=read_cpus)
    ds = ds.map_batches(_Actor, fn_constructor_args=(make_worker,), batch_size=batch_size,
                        compute=ray.data.ActorPoolStrategy(size=n_actors), num_cpus=cpus_per_actor,
                        num_gpus=gpus_per_actor or None, batch_format="numpy")
    out: list[dict] = []
    try:
        for row in ds.iter_rows():
            out.append(row)
            if on_row is not None:
                on_row(row)
    except Exception as exc:  # noqa: BLE001 - re-raise the user-facing error a worker raised
        inner = _unwrap(exc)
        if inner is not None:
            raise inner from None
        raise
    return out


def sum_confusion(rows: Iterable[dict[str, Any]], num_classes: int) -> np.ndarray:
    """Sum the per-batch ``confusion`` rows (flattened ``int64[C*C]``) into one matrix."""
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    for row in rows:
        total += np.asarray(row["confusion"], dtype=np.int64).reshape(num_classes, num_classes)
    return total
