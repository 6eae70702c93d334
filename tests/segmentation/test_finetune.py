"""Fine-tuning a stand-in "converted model" on synthetic rooms.

The stand-in is a tiny dilated conv net (~24k parameters, 64x64 input, 4 classes),
trained on 24 synthetic rooms and scored on 8 held-out rooms. Measured on 2 CPU
cores with the settings below (150 steps, batch 8, lr 0.05; data and init seeds 0-3
and 7): held-out mIoU 0.03-0.16 before, 0.65-0.79 after (seed 0, used here:
0.14 -> 0.66); 200 steps give 0.67-0.80. Training takes 16-43 s wall on a heavily
shared 2-core machine (about 19-21 s of CPU time for the whole script).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from caffe2tf.segmentation.classes import make_palette  # noqa: E402
from caffe2tf.segmentation.evaluate import (evaluate_directory, keras_logits_fn,  # noqa: E402
                                            list_pairs)
from caffe2tf.segmentation.finetune import (PolyLR, finetune, freeze_batchnorm,  # noqa: E402
                                            make_dataset, masked_cross_entropy)
from caffe2tf.segmentation.synthetic import write_dataset  # noqa: E402

pytestmark = pytest.mark.filterwarnings(  # raised inside keras by model.save
    "ignore:__array__ implementation doesn.t accept a copy keyword:DeprecationWarning")

NUM_CLASSES = 4
SIZE = 64


def tiny_model(num_classes: int = NUM_CLASSES, softmax: bool = False) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 64.0)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", dilation_rate=2, activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", dilation_rate=4, activation="relu")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = keras.layers.Conv2D(num_classes, 1, activation="softmax" if softmax else None)(x)
    return keras.Model(inputs, x)


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    root = tmp_path_factory.mktemp("rooms")
    write_dataset(root / "train", 24, SIZE, seed=0, classes="simple")
    write_dataset(root / "val", 8, SIZE, seed=1000, classes="simple")
    return root


def val_miou(model, rooms) -> float:
    cm = evaluate_directory(rooms / "val" / "images", rooms / "val" / "labels",
                            keras_logits_fn(model), NUM_CLASSES, crop_size=(SIZE, SIZE),
                            base_size=SIZE, batch_size=8)
    return cm.compute().mean_iou


def test_finetune_raises_miou(rooms, tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model()
    assert 10_000 < model.count_params() < 50_000
    before = val_miou(model, rooms)
    result = finetune(model, rooms / "train" / "images", rooms / "train" / "labels",
                      tmp_path, steps=150, batch_size=8, lr=0.05, num_classes=NUM_CLASSES,
                      checkpoint_every=100, seed=0)
    after = val_miou(model, rooms)
    assert result.final_step == 150 and len(result.losses) == 150
    assert np.mean(result.losses[-20:]) < 0.6 * np.mean(result.losses[:20])
    assert after > 0.5 and after >= before + 0.3, (before, after)
    assert not model.layers[3].trainable  # BatchNormalization frozen
    assert result.model_path == tmp_path / "model.keras" and result.model_path.is_file()
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").glob("ckpt-*.index"))
    assert ckpts == ["ckpt-100.index", "ckpt-150.index"]


def test_resume_continues_like_one_run(rooms, tmp_path):
    args = dict(images_dir=rooms / "train" / "images", labels_dir=rooms / "train" / "labels",
                steps=20, batch_size=4, lr=0.05, checkpoint_every=5, seed=3, log_every=10)
    keras.utils.set_random_seed(1)
    whole = tiny_model()
    start_weights = whole.get_weights()
    one = finetune(whole, out_dir=tmp_path / "one", **args)

    first = tiny_model()
    first.set_weights(start_weights)
    part = finetune(first, out_dir=tmp_path / "two", until_step=10, **args)
    assert (part.start_step, part.final_step, len(part.losses)) == (0, 10, 10)
    resumed_model = tiny_model()  # fresh random weights: everything must come from disk
    resumed = finetune(resumed_model, out_dir=tmp_path / "two", **args)
    assert resumed.resumed and (resumed.start_step, resumed.final_step) == (10, 20)
    np.testing.assert_allclose(part.losses + resumed.losses, one.losses, rtol=1e-4, atol=1e-5)
    for a, b in zip(whole.get_weights(), resumed_model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

    loaded = keras.models.load_model(resumed.model_path)
    x = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict_on_batch(x), resumed_model.predict_on_batch(x),
                               atol=1e-5)
    again = finetune(tiny_model(), out_dir=tmp_path / "two", **args)
    assert again.losses == [] and again.final_step == 20


def test_poly_lr():
    s = PolyLR(0.01, 100)
    assert float(s(0)) == pytest.approx(0.01)
    assert float(s(50)) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert float(s(100)) == 0.0 and float(s(150)) == 0.0
    clone = PolyLR.from_config(s.get_config())
    assert float(clone(37)) == pytest.approx(float(s(37)))
    with pytest.raises(ValueError):
        PolyLR(0.01, 0)


def test_masked_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=(2, 4, 5))
    labels[0, :2] = 255
    keep = labels != 255
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(logp, np.where(keep, labels, 0)[..., None], -1)[..., 0][keep]
    got = masked_cross_entropy(tf.constant(labels), tf.constant(logits), 255)
    assert float(got) == pytest.approx(expected.mean(), rel=1e-5)
    probs = tf.nn.softmax(logits)
    assert float(masked_cross_entropy(labels, probs, 255, from_logits=False)) == \
        pytest.approx(expected.mean(), rel=1e-4)
    # changing the scores of ignored pixels changes nothing; all ignored -> 0
    logits2 = np.where(keep[..., None], logits, 100.0).astype(np.float32)
    assert float(masked_cross_entropy(labels, logits2, 255)) == pytest.approx(float(got))
    assert float(masked_cross_entropy(np.full((1, 2, 2), 255), logits[:1, :2, :2], 255)) == 0.0
    # low-resolution outputs are resized to the labels
    small = masked_cross_entropy(labels, tf.constant(logits[:, ::2, ::2]), 255)
    assert np.isfinite(float(small))


def test_freeze_batchnorm_nested():
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 1),
                              keras.layers.BatchNormalization()])
    inputs = keras.Input((8, 8, 3))
    outer = keras.Model(inputs, keras.layers.BatchNormalization()(inner(inputs)))
    n_before = len(outer.trainable_variables)
    assert freeze_batchnorm(outer) == 2
    assert len(outer.trainable_variables) == n_before - 4  # gamma/beta of both


def stripes_folder(root):
    """Images whose colour encodes the label; labels increase left to right."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    palette = make_palette(4)
    lab = np.repeat(np.minimum(np.arange(52) // 13, 3)[None], 40, axis=0).astype(np.uint8)
    for i in range(3):
        Image.fromarray(palette[lab]).save(root / "images" / f"s{i}.png")
        Image.fromarray(lab).save(root / "labels" / f"s{i}.png")
    net_colours = (palette[:, ::-1] - np.array([103.939, 116.779, 123.68])).astype(np.float32)
    return list_pairs(root / "images", root / "labels"), net_colours


def test_dataset_crop_flip_pad_and_determinism(tmp_path):
    pairs, net_colours = stripes_folder(tmp_path)
    data = make_dataset(pairs, (32, 52), 16, scale_range=(1.0, 1.0), seed=7)
    x, y = next(iter(data))
    assert x.shape == (16, 32, 52, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    x, y = x.numpy(), y.numpy()
    decoded = np.argmin(((x[..., None, :] - net_colours) ** 2).sum(-1), axis=-1)
    assert (decoded == y).all()  # image and labels cropped and flipped together
    rows = y[:, 0]
    increasing = (np.diff(rows, axis=1) >= 0).all(axis=1)
    decreasing = (np.diff(rows, axis=1) <= 0).all(axis=1)
    assert (increasing | decreasing).all() and increasing.any() and decreasing.any()

    again = next(iter(make_dataset(pairs, (32, 52), 16, scale_range=(1.0, 1.0), seed=7)))
    assert (again[0].numpy() == x).all()
    two = list(make_dataset(pairs, (32, 52), 4, scale_range=(1.0, 1.0), seed=7).take(2))
    skipped = next(iter(make_dataset(pairs, (32, 52), 4, scale_range=(1.0, 1.0), seed=7,
                                     skip_batches=1)))
    assert (skipped[1].numpy() == two[1][1].numpy()).all()

    small = make_dataset(pairs, (64, 64), 2, scale_range=(0.5, 0.5), flip=False, seed=1)
    x, y = (t.numpy() for t in next(iter(small)))
    assert (y[:, 20:] == 255).all() and (y[:, :, 26:] == 255).all()  # 40x52 -> 20x26
    assert (x[:, 20:] == 0).all() and (x[:, :, 26:] == 0).all()     # mean padding
    assert (y[:, :20, :26] < 4).all()
