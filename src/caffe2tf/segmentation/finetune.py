"""Fine-tune a Keras segmentation model the way PSPNet was trained.

- Data (:func:`make_dataset`): image/label PNG pairs; random scale in
  ``scale_range`` (PSPNet: 0.5-2.0; bilinear image, nearest labels), preprocessing
  (BGR minus mean), padding to the crop with zeros (= the mean colour) and
  ``ignore_index`` labels, a random crop of the model's input size and a random
  horizontal flip. Every random draw is stateless, seeded from ``seed`` and the
  sample's position in the stream, so a resumed run sees the same batches as an
  uninterrupted one.
- Loss: pixel-wise sparse cross-entropy averaged over non-ignored pixels (the
  model's output may be logits, ``from_logits=True``, or probabilities); outputs
  smaller than the crop are resized (bilinear) to the labels first. Optional Caffe
  style L2 weight decay on kernels.
- BatchNormalization frozen by default (``trainable=False``, which in Keras 3 also
  runs it in inference mode), as when fine-tuning PSPNet with small batches.
- SGD, momentum 0.9, PSPNet's poly schedule ``lr * (1 - step / steps) ** 0.9``
  (:class:`PolyLR`).
- Checkpoints (``tf.train.Checkpoint`` of model and optimizer; the step is the
  optimizer's iteration count) every ``checkpoint_every`` steps in
  ``OUT/checkpoints``; ``resume=True`` restores the latest one. The final model is
  saved as ``OUT/model.keras``.

- Distribution (``strategy``, :mod:`caffe2tf.segmentation.distributed`): ``batch_size``
  is the global batch, split over ``num_replicas_in_sync`` replicas; every replica
  takes its share of the same global stream (:func:`make_dataset`'s ``pipeline``)
  and normalises its summed loss by the global count of labelled pixels, so the
  summed gradients equal one process's on the whole batch. Non-chief workers save
  their (collective) checkpoints to a scratch folder they delete again; all restore
  the chief's latest.

Not reproduced from PSPNet's training: random rotation and blur, the auxiliary loss,
and 10x learning rates for new layers.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from caffe2tf.segmentation.errors import SegmentationInputError
from caffe2tf.segmentation.evaluate import list_pairs, read_rgb
from caffe2tf.segmentation.preprocess import PSPNET_PREPROCESSING, Preprocessing
from caffe2tf.segmentation.visualize import read_label_png

__all__ = ["PolyLR", "FinetuneResult", "finetune", "make_dataset", "masked_cross_entropy",
           "freeze_batchnorm"]

log = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="caffe2tf")
class PolyLR(keras.optimizers.schedules.LearningRateSchedule):
    """PSPNet's poly schedule: ``base_lr * (1 - min(step, max_steps) / max_steps) ** power``."""

    def __init__(self, base_lr: float, max_steps: int, power: float = 0.9) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, received {max_steps}")
        self.base_lr = float(base_lr)
        self.max_steps = int(max_steps)
        self.power = float(power)

    def __call__(self, step):  # noqa: ANN001, ANN204 - tensor in, tensor out
        step = tf.minimum(tf.cast(step, tf.float32), float(self.max_steps))
        return self.base_lr * tf.pow(1.0 - step / self.max_steps, self.power)

    def get_config(self) -> dict:
        return {"base_lr": self.base_lr, "max_steps": self.max_steps, "power": self.power}


class FinetuneDivergedError(SegmentationInputError):
    """Training diverged (non-finite loss)."""


@dataclass
class FinetuneResult:
    """What :func:`finetune` did; ``losses`` are the steps run by this call."""

    model: keras.Model
    model_path: Path
    checkpoint_dir: Path
    start_step: int
    final_step: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    step_seconds: list[float] = field(default_factory=list)
    plan: dict = field(default_factory=dict)  # strategy, replicas, global/per-replica batch, schedule
    chief: bool = True

    @property
    def resumed(self) -> bool:
        return self.start_step > 0


def _iter_layers(layer: keras.layers.Layer):  # noqa: ANN202 - generator
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _iter_layers(sub)


def freeze_batchnorm(model: keras.Model) -> int:
    """Set ``trainable=False`` on every BatchNormalization layer (nested models too).

    Also freezes custom layers whose class name contains ``BatchNorm`` and caffe2tf's
    ``CaffeAffine`` (an unfolded Caffe BatchNorm / BN / Scale / Bias). Returns the
    number of frozen layers.
    """
    count = 0
    for layer in _iter_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) or \
                "BatchNorm" in type(layer).__name__ or type(layer).__name__ == "CaffeAffine":
            layer.trainable = False
            count += 1
    return count


def _masked_ce_sum(labels: tf.Tensor, outputs: tf.Tensor, ignore_index: int,
                   from_logits: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """(sum of cross-entropy over non-ignored pixels, their count) - see :func:`masked_cross_entropy`."""
    labels = tf.cast(labels, tf.int32)
    if outputs.shape[1:3] != labels.shape[1:3]:
        outputs = tf.image.resize(outputs, tf.shape(labels)[1:3], method="bilinear")
    mask = tf.not_equal(labels, ignore_index)
    safe = tf.where(mask, labels, tf.zeros_like(labels))
    ce = keras.losses.sparse_categorical_crossentropy(safe, outputs, from_logits=from_logits)
    maskf = tf.cast(mask, ce.dtype)
    return tf.reduce_sum(ce * maskf), tf.reduce_sum(maskf)


def masked_cross_entropy(labels: tf.Tensor, outputs: tf.Tensor, ignore_index: int,
                         from_logits: bool = True) -> tf.Tensor:
    """Mean sparse cross-entropy over pixels whose label is not ``ignore_index``.

    ``labels`` int ``[n, h, w]``; ``outputs`` ``[n, h', w', C]`` (resized to ``h, w``
    bilinearly when different). Returns 0 when every pixel is ignored.
    """
    labels = tf.cast(labels, tf.int32)
    if outputs.shape[1:3] != labels.shape[1:3]:
        outputs = tf.image.resize(outputs, tf.shape(labels)[1:3], method="bilinear")
    mask = tf.not_equal(labels, ignore_index)
    safe = tf.where(mask, labels, tf.zeros_like(labels))
    ce = keras.losses.sparse_categorical_crossentropy(safe, outputs, from_logits=from_logits)
    maskf = tf.cast(mask, ce.dtype)
    return tf.reduce_sum(ce * maskf) / tf.maximum(tf.reduce_sum(maskf), 1.0)


def _loader(pairs: list[tuple[Path, Path]],
            label_transform: Callable[[np.ndarray], np.ndarray] | None
            ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def load(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = pairs[int(index)]
        image = read_rgb(image_path)
        labels = read_label_png(label_path)
        if label_transform is not None:
            labels = label_transform(labels)
        if labels.shape != image.shape[:2]:
            raise SegmentationInputError(f"label size {labels.shape} != image size "
                                         f"{image.shape[:2]}", file=str(label_path))
        return image, labels.astype(np.int32)
    return load


def make_dataset(pairs: list[tuple[Path, Path]], crop_size: tuple[int, int], batch_size: int,
                 *, preprocessing: Preprocessing = PSPNET_PREPROCESSING, ignore_index: int = 255,
                 scale_range: tuple[float, float] = (0.5, 2.0), flip: bool = True,
                 seed: int = 0, skip_batches: int = 0,
                 label_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 global_batch: int | None = None, pipeline: tuple[int, int] = (0, 1)
                 ) -> tf.data.Dataset:
    """Endless ``(image float32 [b, h, w, 3], labels int32 [b, h, w])`` batches.

    ``skip_batches`` fast-forwards the stream (cheaply, before any decoding): used on
    resume so the data continues where the interrupted run stopped.

    Distributed input: the stream is cut into global batches of ``global_batch``
    samples (default ``batch_size``); input pipeline ``pipeline = (i, n)`` keeps
    positions ``[i * g / n, (i + 1) * g / n)`` of every global batch and batches them
    by ``batch_size`` (the per-replica batch), so the union over pipelines and
    replicas is exactly the single-process stream.
    """
    g = int(global_batch or batch_size)
    pid, npipes = int(pipeline[0]), int(pipeline[1])
    if g % npipes or (g // npipes) % batch_size:
        raise ValueError(f"global batch {g} does not split into {npipes} pipeline(s) of "
                         f"per-replica batches of {batch_size}")
    per_pipe = g // npipes
    ch, cw = crop_size
    mean = tf.constant(preprocessing.mean_input_order, tf.float32)
    load = _loader(pairs, label_transform)

    def augment(index: tf.Tensor, sample_seed: tf.Tensor):  # noqa: ANN202
        image, labels = tf.numpy_function(load, [index], (tf.uint8, tf.int32))
        image = tf.ensure_shape(image, [None, None, 3])
        labels = tf.ensure_shape(labels, [None, None])
        seeds = tf.random.experimental.stateless_split(
            tf.stack([sample_seed, tf.constant(seed, tf.int64)]), 4)
        size = tf.cast(tf.shape(labels), tf.float32)
        scale = tf.random.stateless_uniform([], seeds[0], scale_range[0], scale_range[1])
        new_size = tf.maximum(tf.cast(tf.round(size * scale), tf.int32), 1)
        x = tf.image.resize(tf.cast(image, tf.float32), new_size, method="bilinear")
        y = tf.image.resize(labels[..., None], new_size, method="nearest")[..., 0]
        if preprocessing.bgr:
            x = x[..., ::-1]
        x = (x - mean) * preprocessing.scale
        pad_h = tf.maximum(ch - new_size[0], 0)
        pad_w = tf.maximum(cw - new_size[1], 0)
        x = tf.pad(x, [[0, pad_h], [0, pad_w], [0, 0]])
        y = tf.pad(y, [[0, pad_h], [0, pad_w]], constant_values=ignore_index)
        stacked = tf.concat([x, tf.cast(y[..., None], tf.float32)], axis=-1)
        stacked = tf.image.stateless_random_crop(stacked, [ch, cw, 4], seeds[1])
        if flip:
            do_flip = tf.random.stateless_uniform([], seeds[2]) < 0.5
            stacked = tf.cond(do_flip, lambda: stacked[:, ::-1], lambda: stacked)
        return stacked[..., :3], tf.cast(tf.round(stacked[..., 3]), tf.int32)

    indices = tf.data.Dataset.range(len(pairs)).shuffle(
        len(pairs), seed=seed, reshuffle_each_iteration=True).repeat()
    stream = tf.data.Dataset.zip((indices, tf.data.Dataset.range(1 << 62)))
    stream = stream.skip(skip_batches * g)
    if per_pipe != g:
        stream = stream.filter(lambda _, k: tf.equal((k % g) // per_pipe, pid))
    return (stream.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size, drop_remainder=True).prefetch(2))


def _input_crop(model: keras.Model, crop_size: tuple[int, int] | None) -> tuple[int, int]:
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    h, w = shape[1], shape[2]
    if crop_size is not None:
        if (h is not None and h != crop_size[0]) or (w is not None and w != crop_size[1]):
            raise ValueError(f"crop_size {crop_size} does not match the model input {shape}")
        return int(crop_size[0]), int(crop_size[1])
    if h is None or w is None:
        raise ValueError(f"model input {shape} has no fixed size: pass crop_size")
    return int(h), int(w)


def finetune(model: keras.Model | Callable[[], keras.Model], images_dir: str | Path | None, labels_dir: str | Path | None,
             out_dir: str | Path, steps: int, batch_size: int = 8, lr: float = 0.01,
             num_classes: int | None = None, ignore_index: int = 255, *,
             from_logits: bool = True, crop_size: tuple[int, int] | None = None,
             preprocessing: Preprocessing = PSPNET_PREPROCESSING,
             scale_range: tuple[float, float] = (0.5, 2.0), flip: bool = True,
             momentum: float = 0.9, power: float = 0.9, weight_decay: float = 0.0,
             freeze_bn: bool = True, checkpoint_every: int = 100, keep_checkpoints: int = 3,
             resume: bool = True, until_step: int | None = None, seed: int = 0,
             log_every: int = 20, label_transform: Callable[[np.ndarray], np.ndarray] | None = None,
             pairs: list[tuple[Path, Path]] | None = None,
             strategy: tf.distribute.Strategy | None = None,
             on_step: Callable[[int, float], None] | None = None) -> FinetuneResult:
    """Fine-tune ``model`` in place for ``steps`` total steps (module doc).

    With ``resume`` and a checkpoint in ``OUT/checkpoints`` training continues from
    its step up to ``steps`` (same data stream and learning rates). ``until_step``
    stops this call early at that step (checkpointed), e.g. to train in chunks; the
    schedule still spans ``steps``. ``OUT/model.keras`` is written at the end of
    every call (the final model once ``steps`` is reached). ``num_classes``, when
    given, is checked against the model output. ``pairs`` (e.g. a manifest's
    :func:`~caffe2tf.segmentation.dataset.read_manifest`) replaces the two folders.
    With a ``strategy`` other than the default, pass ``model`` as a function that
    builds or loads it: it is called inside ``strategy.scope()``. ``on_step(step,
    loss)`` is called after every step.
    """
    from caffe2tf.segmentation.distributed import checkpoint_dir_for, describe_strategy, is_chief

    strategy = strategy or tf.distribute.get_strategy()
    default_strategy = strategy is tf.distribute.get_strategy() and not tf.distribute.in_cross_replica_context()
    replicas = int(strategy.num_replicas_in_sync)
    chief = is_chief(strategy)
    if pairs is None and (images_dir is None or labels_dir is None):
        raise ValueError("give images_dir and labels_dir, or pairs")
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for name, value in (("steps", steps), ("batch_size", batch_size),
                        ("checkpoint_every", checkpoint_every), ("log_every", log_every)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, received {value}")
    if batch_size % replicas:
        raise ValueError(f"the global batch {batch_size} does not split over {replicas} replicas")
    per_replica = batch_size // replicas
    with strategy.scope():
        if not isinstance(model, keras.Model):
            model = model()
        crop = _input_crop(model, crop_size)
        if num_classes is not None and model.output_shape[-1] not in (None, num_classes):
            raise ValueError(f"model outputs {model.output_shape[-1]} classes, "
                             f"num_classes={num_classes}")
        if freeze_bn:
            log.info("froze %d BatchNormalization layers", freeze_batchnorm(model))
        optimizer = keras.optimizers.SGD(learning_rate=PolyLR(lr, steps, power), momentum=momentum)
        variables = model.trainable_variables
        optimizer.build(variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    write_dir = checkpoint_dir_for(strategy, ckpt_dir)
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=keep_checkpoints) if chief else None
    latest = tf.train.latest_checkpoint(str(ckpt_dir)) if resume else None
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        log.info("resumed from %s", latest)
    start = int(optimizer.iterations.numpy())
    plan = {**describe_strategy(strategy), "global_batch": batch_size, "per_replica_batch": per_replica,
            "schedule": f"poly: lr = {lr:g} * (1 - step / {steps}) ** {power:g}, SGD momentum {momentum:g}",
            "base_lr": lr, "steps": steps}
    log.info("%s", plan)

    def save(step: int) -> None:
        if chief:
            manager.save(checkpoint_number=step)
        else:  # the saving ops are collective: write too, into a scratch folder, and drop it
            checkpoint.write(str(write_dir / f"ckpt-{step}"))
            tf.io.gfile.rmtree(str(write_dir))
    stop = steps if until_step is None else min(int(until_step), steps)

    kernels = [v for v in variables if "kernel" in v.path or "kernel" in v.name]

    def replica_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        ctx = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            ce_sum, count = _masked_ce_sum(y, model(x, training=True), ignore_index, from_logits)
            total_count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(count))
            loss = ce_sum / tf.maximum(total_count, 1.0)  # this replica's share of the global mean
            total = loss
            if weight_decay:
                total += 0.5 * weight_decay / replicas * tf.add_n([tf.reduce_sum(tf.square(k))
                                                                   for k in kernels])
        grads = tape.gradient(total, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))  # summed over replicas
        return loss

    @tf.function
    def train_step(x, y) -> tf.Tensor:  # noqa: ANN001 - per-replica values
        per_replica_loss = strategy.run(replica_step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)

    losses: list[float] = []
    step_seconds: list[float] = []
    began = time.perf_counter()
    if start < stop:
        if pairs is None:
            pairs = list_pairs(images_dir, labels_dir)
        options = dict(preprocessing=preprocessing, ignore_index=ignore_index, scale_range=scale_range,
                       flip=flip, seed=seed, skip_batches=start, label_transform=label_transform)
        if default_strategy:
            data = iter(make_dataset(pairs, crop, batch_size, **options))
        else:
            data = iter(strategy.distribute_datasets_from_function(
                lambda ic: make_dataset(pairs, crop, ic.get_per_replica_batch_size(batch_size),
                                        global_batch=batch_size,
                                        pipeline=(ic.input_pipeline_id, ic.num_input_pipelines), **options)))
        log.info("fine-tuning %d pairs, steps %d..%d of %d, global batch %d (%d replica(s)), crop %s",
                 len(pairs), start, stop, steps, batch_size, replicas, crop)
        for _ in range(stop - start):
            t = time.perf_counter()
            x, y = next(data)
            losses.append(float(train_step(x, y)))
            step_seconds.append(time.perf_counter() - t)
            step = int(optimizer.iterations.numpy())
            if not np.isfinite(losses[-1]):
                raise FinetuneDivergedError(
                    f"the loss became {losses[-1]} at step {step}: lower the learning rate (was {lr}); "
                    "a model converted with folded BatchNorm/BN often needs --no-fold to train stably",
                    file=str(out))
            if step % log_every == 0 or step == steps:
                log.info("step %d/%d loss %.4f lr %.5f", step, steps, losses[-1],
                         float(optimizer.learning_rate))
            if step % checkpoint_every == 0 or step == stop:
                save(step)
            if on_step is not None:
                on_step(step, losses[-1])
    else:
        log.info("checkpoint already at step %d >= %d: nothing to train", start, stop)
    model_path = out / "model.keras"
    if chief:
        model.save(model_path)
    return FinetuneResult(model=model, model_path=model_path, checkpoint_dir=ckpt_dir,
                          start_step=start, final_step=int(optimizer.iterations.numpy()),
                          losses=losses, seconds=time.perf_counter() - began, step_seconds=step_seconds,
                          plan=plan, chief=chief)
