"""tf.distribute strategies for :func:`~caffe2tf.segmentation.finetune.finetune`.

``default``
    one device (TensorFlow's default strategy).
``mirrored``
    :class:`tf.distribute.MirroredStrategy`: every GPU of this host (or the CPU when
    there is none), one replica per device, gradients all-reduced.
``multi-worker``
    :class:`tf.distribute.MultiWorkerMirroredStrategy` across hosts, configured by
    the ``TF_CONFIG`` environment variable exactly as TensorFlow documents it::

        {"cluster": {"worker": ["host0:12345", "host1:12345"]},
         "task": {"type": "worker", "index": 0}}

    Every worker runs the same command with its own ``task.index``; worker 0 is the
    chief (or the task of type ``chief`` when the cluster names one). The strategy must
    be created before TensorFlow runs any op, so the CLI creates it first.

The batch size given to ``finetune`` is the *global* batch: each of the
``num_replicas_in_sync`` replicas gets ``global / replicas`` samples, taken from the
same global stream a single process would read (:func:`shard_positions`), and the
loss is normalised by the global count of labelled pixels, so a step computes the
same gradient as one process with the whole batch (up to float summation order).

Checkpoints follow TensorFlow's multi-worker pattern: every worker saves (the
saving ops are collective), the chief into ``OUT/checkpoints`` and the others into
``OUT/checkpoints/.worker-<i>`` which they delete again; every worker restores the
chief's latest. ``OUT`` must be on storage all workers share. After a worker dies
the others stop (their collectives fail or time out); restart all of them with the
same command and they resume from the last checkpoint (the data stream is
fast-forwarded to the same position).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import tensorflow as tf

__all__ = ["STRATEGIES", "make_strategy", "is_chief", "task_id", "describe_strategy"]

log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name: str, *, collective_timeout_s: float | None = None) -> tf.distribute.Strategy:
    """The strategy called ``name`` (module docstring)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multi-worker needs TF_CONFIG (see docs/distributed.md)")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"TF_CONFIG is not valid JSON: {exc.msg}") from None
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout_s) if collective_timeout_s else None
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise ValueError(f"unknown strategy {name!r} (one of {', '.join(STRATEGIES)})")


def _task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def task_id(strategy: tf.distribute.Strategy) -> int:
    return _task(strategy)[1]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one worker that writes the results (always true without a cluster)."""
    task_type, index = _task(strategy)
    if task_type is None:
        return True
    resolver = strategy.cluster_resolver
    if task_type == "chief":
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() if resolver.cluster_spec() else {})
    return task_type == "worker" and index == 0 and not has_chief


def checkpoint_dir_for(strategy: tf.distribute.Strategy, ckpt_dir: Path) -> Path:
    """Where this worker writes checkpoints: the chief the real folder, others a scratch one."""
    if is_chief(strategy):
        return ckpt_dir
    return ckpt_dir / f".worker-{task_id(strategy)}"


def describe_strategy(strategy: tf.distribute.Strategy) -> dict:
    task_type, index = _task(strategy)
    workers = 1
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and task_type is not None:
        spec = resolver.cluster_spec().as_dict()
        workers = sum(len(v) for k, v in spec.items() if k in ("chief", "worker"))
    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # the class behind it is CollectiveAllReduceStrategy
    return {"strategy": name, "replicas": int(strategy.num_replicas_in_sync),
            "workers": workers, "task": f"{task_type}:{index}" if task_type else None,
            "chief": is_chief(strategy)}
