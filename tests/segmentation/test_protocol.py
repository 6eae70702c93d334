"""PSPNet's sliding-window / flip / multi-scale protocol with fake networks."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2tf.segmentation.preprocess import PSPNET_PREPROCESSING, resize_image, scaled_size
from caffe2tf.segmentation.protocol import (PSPNET_ADE20K_MULTI_SCALE,
                                            PSPNET_ADE20K_SINGLE_SCALE, segment_image,
                                            sliding_windows, window_starts, window_stride)

C = 5
RNG = np.random.default_rng(1234)
W_COLOUR = RNG.normal(size=(3, C)).astype(np.float32) / 50
POS = RNG.normal(size=(2, C)).astype(np.float32)


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def colour_fn(batch: np.ndarray) -> np.ndarray:
    """Per-pixel function of the colour: commutes with flips and window placement."""
    return batch @ W_COLOUR


def position_fn(batch: np.ndarray) -> np.ndarray:
    """Depends on the position inside the crop as well as on colour."""
    n, h, w, _ = batch.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pos = yy[..., None] / h * POS[0] + xx[..., None] / w * POS[1]
    return batch @ W_COLOUR + pos[None]


def brute_force(img: np.ndarray, fn, crop, flip: bool) -> np.ndarray:
    """Independent loop implementation of one scale without resizing."""
    x = PSPNET_PREPROCESSING.to_net_input(img)
    h, w = x.shape[:2]
    ch, cw = crop
    hp, wp = max(h, ch), max(w, cw)
    padded = np.zeros((hp, wp, 3), np.float32)
    padded[:h, :w] = x

    def starts(length, size):
        step, out, s = math.ceil(size * 2 / 3), [], 0
        while True:
            out.append(min(s, length - size))
            if s + size >= length:
                return out
            s += step

    acc = np.zeros((hp, wp, C), np.float64)
    count = np.zeros((hp, wp, 1))
    for y0 in starts(hp, ch):
        for x0 in starts(wp, cw):
            crop_x = padded[y0:y0 + ch, x0:x0 + cw]
            out = fn(crop_x[None])[0]
            if flip:
                out = out + fn(crop_x[None, :, ::-1])[0][:, ::-1]
            acc[y0:y0 + ch, x0:x0 + cw] += out
            count[y0:y0 + ch, x0:x0 + cw] += 1
    return (acc / count)[:h, :w]


CASES = [  # (height, width, crop)
    (100, 70, (32, 40)),   # larger than the crop, several windows each way
    (20, 15, (32, 32)),    # smaller than the crop: padded, one window
    (33, 47, (33, 20)),    # odd sizes, one axis exactly the crop
    (45, 31, (16, 16)),    # non-square, many overlapping windows
    (20, 90, (32, 32)),    # pad one axis, slide along the other
]


@pytest.mark.parametrize("h,w,crop", CASES)
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("fn", [colour_fn, position_fn], ids=["colour", "position"])
def test_matches_brute_force(h, w, crop, flip, fn):
    img = image(h, w, seed=h * w)
    expected = brute_force(img, fn, crop, flip)
    for batch_size in (1, 3, 64):
        res = segment_image(img, fn, crop, num_classes=C, base_size=max(h, w), flip=flip,
                            batch_size=batch_size)
        assert res.scores.shape == (h, w, C) and res.scores.dtype == np.float32
        np.testing.assert_allclose(res.scores, expected, rtol=1e-5, atol=1e-5)
        assert (res.labels == expected.argmax(-1)).mean() > 0.999
        assert res.labels.shape == (h, w)


@pytest.mark.parametrize("h,w,crop", CASES)
def test_colour_fn_equals_whole_image_and_flip_doubles(h, w, crop):
    img = image(h, w, seed=1)
    whole = colour_fn(PSPNET_PREPROCESSING.to_net_input(img)[None])[0]
    plain = segment_image(img, colour_fn, crop, base_size=max(h, w))
    flipped = segment_image(img, colour_fn, crop, base_size=max(h, w), flip=True)
    np.testing.assert_allclose(plain.scores, whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(flipped.scores, 2 * plain.scores, rtol=1e-5, atol=1e-5)
    assert (flipped.labels == plain.labels).all()


def test_position_fn_flip_is_not_doubling():
    """Guards the test above: a flip-sensitive network must not just double."""
    img = image(40, 50)
    plain = segment_image(img, position_fn, (32, 32), base_size=50)
    flipped = segment_image(img, position_fn, (32, 32), base_size=50, flip=True)
    assert np.abs(flipped.scores - 2 * plain.scores).max() > 0.1


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 400), st.integers(1, 200), st.floats(0.1, 1.0))
def test_windows_cover_every_pixel(extra, crop, rate):
    length = crop + extra - 1
    stride = window_stride(crop, rate)
    starts = window_starts(length, crop, stride)
    covered = np.zeros(length, int)
    for s in starts:
        assert 0 <= s <= length - crop
        covered[s:s + crop] += 1
    assert covered.min() >= 1
    assert starts[0] == 0 and starts[-1] == length - crop
    assert len(starts) == math.ceil((length - crop) / stride) + 1
    assert all(b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def test_window_stride_and_grid():
    assert window_stride(473) == 316  # PSPNet ADE20K
    assert window_stride(713) == 476  # PSPNet Cityscapes
    assert window_stride(9) == 6 and window_stride(3) == 2  # exact thirds, no float slop
    assert sliding_windows(473, 683, (473, 473), (316, 316)) == [(0, 0), (0, 210)]
    with pytest.raises(ValueError, match="shorter than the crop"):
        window_starts(10, 11, 5)


def test_every_pixel_averaged_once_per_window():
    ones = lambda b: np.ones(b.shape[:3] + (2,), np.float32)  # noqa: E731
    res = segment_image(image(61, 77), ones, (24, 30), base_size=77, flip=True)
    np.testing.assert_allclose(res.scores, 2.0)  # sum / count, flip adds its copy


def test_padding_is_zero_after_preprocessing_and_batches_are_bounded():
    seen = []

    def record(batch):
        seen.append(batch.copy())
        return colour_fn(batch)

    img = image(20, 15)
    segment_image(img, record, (32, 32), base_size=20, flip=True, batch_size=1)
    assert [b.shape for b in seen] == [(1, 32, 32, 3)] * 2
    x = PSPNET_PREPROCESSING.to_net_input(img)
    np.testing.assert_array_equal(seen[0][0, :20, :15], x)
    assert not seen[0][0, 20:].any() and not seen[0][0, :, 15:].any()
    np.testing.assert_array_equal(seen[1][0], seen[0][0][:, ::-1])  # the mirrored crop

    seen.clear()
    segment_image(image(100, 70), record, (32, 40), base_size=100, flip=True, batch_size=4)
    sizes = [len(b) for b in seen]
    windows = len(sliding_windows(100, 70, (32, 40), (22, 27)))
    assert max(sizes) <= 4 and sum(sizes) == 2 * windows


def test_resizing_scales_and_softmax():
    bias = np.array([0.3, -1.0, 2.0, 0.5, 0.0], np.float32)
    const = lambda b: np.broadcast_to(bias, b.shape[:3] + (C,)).copy()  # noqa: E731
    seen = []

    def record(batch):
        seen.append(batch.copy())
        return const(batch)

    img = image(50, 80)
    res = segment_image(img, record, (16, 16), base_size=40)  # long side 80 -> 40
    assert res.scores.shape == (50, 80, C)
    np.testing.assert_allclose(res.scores, np.broadcast_to(bias, (50, 80, C)), atol=1e-5)
    assert (res.labels == 2).all()
    small = PSPNET_PREPROCESSING.to_net_input(resize_image(img, scaled_size(50, 80, 40)))
    assert small.shape == (25, 40, 3)
    np.testing.assert_array_equal(seen[0][0], small[:16, :16])

    e = np.exp(2 * bias - (2 * bias).max())
    soft = e / e.sum()
    res = segment_image(img, const, (16, 16), base_size=40, scales=(0.5, 1.0, 1.5), flip=True,
                        softmax=True, long_side_offset=1)
    np.testing.assert_allclose(res.scores, np.broadcast_to(soft, (50, 80, C)), atol=1e-5)
    np.testing.assert_allclose(res.scores.sum(-1), 1.0, atol=1e-5)


def test_scaled_size_like_matlab():
    assert scaled_size(375, 500, 513) == (385, 513)  # 384.75 -> 385
    assert scaled_size(500, 375, 513) == (513, 385)
    assert scaled_size(300, 300, 513) == (513, 513)
    assert scaled_size(3, 4, 6) == (5, 6)  # 4.5 rounds half up, as MATLAB's round
    assert scaled_size(1, 1000, 10) == (1, 10)  # never 0


def test_pspnet_presets():
    assert PSPNET_ADE20K_SINGLE_SCALE["crop_size"] == (473, 473)
    assert PSPNET_ADE20K_SINGLE_SCALE["base_size"] == 512
    assert PSPNET_ADE20K_SINGLE_SCALE["long_side_offset"] == 1
    assert PSPNET_ADE20K_SINGLE_SCALE["flip"] and PSPNET_ADE20K_SINGLE_SCALE["softmax"]
    assert PSPNET_ADE20K_MULTI_SCALE["scales"] == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    calls = []

    def fake(batch):
        calls.append(batch.shape)
        return np.zeros(batch.shape[:3] + (3,), np.float32)  # 3 classes keep it fast

    res = segment_image(image(375, 500), fake, num_classes=3, batch_size=4,
                        **PSPNET_ADE20K_SINGLE_SCALE)
    # 513 x 385 -> padded 513 x 473: two windows along the long side, each mirrored
    assert calls == [(4, 473, 473, 3)]
    assert res.scores.shape == (375, 500, 3)
    np.testing.assert_allclose(res.scores.sum(-1), 1.0, atol=1e-5)


def test_bad_inputs():
    img = image(20, 20)
    with pytest.raises(ValueError, match="uint8"):
        segment_image(img.astype(np.float32), colour_fn, (16, 16))
    with pytest.raises(ValueError, match="expected"):
        segment_image(img, lambda b: b[:, :8], (16, 16))
    with pytest.raises(ValueError, match="classes"):
        segment_image(img, colour_fn, (16, 16), num_classes=7)
    with pytest.raises(ValueError, match="scales"):
        segment_image(img, colour_fn, (16, 16), scales=())
