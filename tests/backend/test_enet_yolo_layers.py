"""MAX Pooling's mask top, both Upsample readings, SegNet/ENet BN and Tile on hand-built
one-layer graphs, with expectations derived by hand from the forks' C++ (pooling_layer.cpp,
upsample_layer.cpp of caffe-enet, bn_layer.cpp, tile_layer.cpp)."""
from __future__ import annotations

import numpy as np
import pytest

from caffe2tf.backend.build import build_keras_model
from caffe2tf.errors import ConversionError

f32 = np.float32


def _run(graph_of, run_keras, text, shapes, inputs, weights=None, reading=None):
    g = graph_of(text, shapes, weights)
    if reading is not None:
        g.nodes[-1] = g.nodes[-1].with_(reading=reading)
    out = run_keras(build_keras_model(g, outputs="all"), g, [np.asarray(a, f32) for a in inputs])
    return [out[v] for v in g.nodes[-1].outputs]


# ------------------------------------------------------------------ pooling mask ------------

def test_mask_first_maximum_wins_on_ties(graph_of, run_keras):
    """k2 s2 on a constant plane: every window ties; the first (top-left) element wins."""
    x = np.full((1, 1, 4, 4), 3.0)
    top, mask = _run(graph_of, run_keras, 'type: "Pooling" top: "y" top: "mask" '
                     'pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [(1, 1, 4, 4)], [x])
    np.testing.assert_array_equal(top, np.full((1, 1, 2, 2), 3.0))
    np.testing.assert_array_equal(mask[0, 0], [[0, 2], [8, 10]])


def test_mask_indexes_the_unpadded_plane(graph_of, run_keras):
    """k3 s2 pad 1 on 3x3 (2x2 out): windows are clipped to the input; indices are h*W + w of the
    input, never of the padded map, even when every value is negative."""
    x = -np.arange(1, 10, dtype=f32).reshape(1, 1, 3, 3)  # max of any window: its top-left pixel
    top, mask = _run(graph_of, run_keras, 'type: "Pooling" top: "y" top: "mask" '
                     'pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }', [(1, 1, 3, 3)], [x])
    np.testing.assert_array_equal(mask[0, 0], [[0, 1], [3, 4]])
    np.testing.assert_array_equal(top[0, 0], [[-1, -2], [-4, -5]])


def test_mask_per_channel_and_batch(graph_of, run_keras):
    """The mask is the index within each (n, c) plane: no batch or channel offset."""
    x = np.zeros((2, 3, 2, 2), f32)
    for n in range(2):
        for c in range(3):
            x[n, c].flat[(n + c) % 4] = 1 + n + c
    top, mask = _run(graph_of, run_keras, 'type: "Pooling" top: "y" top: "mask" '
                     'pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [(2, 3, 2, 2)], [x])
    np.testing.assert_array_equal(mask[:, :, 0, 0], [[0, 1, 2], [1, 2, 3]])
    np.testing.assert_array_equal(top[:, :, 0, 0], [[1, 2, 3], [2, 3, 4]])


def test_mask_on_ave_pooling_is_refused(graph_of):
    g = graph_of('type: "Pooling" top: "y" top: "mask" pooling_param { pool: MAX kernel_size: 2 stride: 2 }',
                 [(1, 1, 4, 4)])
    node = g.nodes[-1]
    node.param.pooling_param.pool = node.param.pooling_param.AVE
    with pytest.raises(ConversionError, match="mask"):
        build_keras_model(g)


# ------------------------------------------------------------------ Upsample ----------------

def test_unpool_writes_values_at_mask_and_later_writes_win(graph_of, run_keras):
    """top = zeros(3x3); top.flat[mask[i]] = value[i] in order: index 4 is written by values
    0 and 3, so the later (3: value 40) stays; index 8 by value 1."""
    values = np.array([10, 20, 30, 40], f32).reshape(1, 1, 2, 2)
    mask = np.array([4, 8, 0, 4], f32).reshape(1, 1, 2, 2)
    (out,) = _run(graph_of, run_keras, 'type: "Upsample" upsample_param { upsample_h: 3 upsample_w: 3 }',
                  [(1, 1, 2, 2), (1, 1, 2, 2)], [values, mask], reading="unpool")
    np.testing.assert_array_equal(out[0, 0], [[30, 0, 0], [0, 40, 0], [0, 0, 20]])


def test_unpool_scale_and_channels(graph_of, run_keras):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 3, 2, 3)).astype(f32)
    mask = np.stack([rng.permutation(24)[:6] for _ in range(6)]).reshape(2, 3, 2, 3).astype(f32)
    (out,) = _run(graph_of, run_keras, 'type: "Upsample" upsample_param { scale: 2 }',
                  [(2, 3, 2, 3), (2, 3, 2, 3)], [values, mask], reading="unpool")
    want = np.zeros((2, 3, 4, 6), f32)
    for n in range(2):
        for c in range(3):
            want[n, c].flat[mask[n, c].astype(int).ravel()] = values[n, c].ravel()
    np.testing.assert_array_equal(out, want)  # pure data movement: exact


def test_nearest_upsample_repeats(graph_of, run_keras):
    x = np.array([[1, 2], [3, 4]], f32).reshape(1, 1, 2, 2)
    (out,) = _run(graph_of, run_keras, 'type: "Upsample" upsample_param { scale: 3 }', [(1, 1, 2, 2)], [x],
                  reading="nearest")
    np.testing.assert_array_equal(out[0, 0], np.repeat(np.repeat(x[0, 0], 3, 0), 3, 1))


def test_upsample_without_reading_is_refused(graph_of):
    g = graph_of('type: "Upsample" upsample_param { scale: 2 }', [(1, 1, 2, 2)])
    with pytest.raises(ConversionError, match="reading"):
        build_keras_model(g)


# ------------------------------------------------------------------ SegNet / ENet BN --------

def test_segnet_bn_learn_mode_uses_batch_statistics(graph_of, run_keras):
    """bn_layer.cpp LEARN: mean and E[x^2] over N, H, W; var = E[x^2] - E[x]^2; eps 1e-9."""
    rng = np.random.default_rng(1)
    x = rng.normal(3, 2, size=(2, 3, 4, 5)).astype(f32)
    scale, shift = np.array([1, 2, 0.5], f32), np.array([0, -1, 4], f32)
    (out,) = _run(graph_of, run_keras, 'type: "BN" bn_param { scale_filler { value: 1 } }', [x.shape], [x],
                  weights=[scale, shift], reading="segnet")
    xd = x.astype(np.float64)
    mean = xd.mean(axis=(0, 2, 3), keepdims=True)
    var = (xd ** 2).mean(axis=(0, 2, 3), keepdims=True) - mean ** 2
    want = (xd - mean) / np.sqrt(var + 1e-9) * scale[None, :, None, None] + shift[None, :, None, None]
    # float32 E[x^2] - E[x]^2 with mean 3 and std 2 loses ~1e-6 of the variance
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_segnet_bn_inference_is_affine(graph_of, run_keras):
    x = np.random.default_rng(2).normal(size=(1, 2, 3, 3)).astype(f32)
    (out,) = _run(graph_of, run_keras, 'type: "BN" bn_param { bn_mode: INFERENCE }', [x.shape], [x],
                  weights=[np.array([2, -1], f32), np.array([0.5, 3], f32)], reading="segnet")
    want = x * np.array([2, -1], f32)[None, :, None, None] + np.array([0.5, 3], f32)[None, :, None, None]
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=0)


# ------------------------------------------------------------------ Tile --------------------

@pytest.mark.parametrize("axis,tiles,shape", [(1, 3, (2, 2, 3, 2)), (-1, 2, (1, 3, 2, 4)), (2, 2, (2, 3, 2, 2)),
                                             (1, 2, (3, 4)), (0, 2, (2, 3, 2, 2))])
def test_tile_repeats_the_block_from_axis(graph_of, run_keras, axis, tiles, shape):
    """Caffe: out index j along ``axis`` is input index j mod size (the block from ``axis`` on is
    copied ``tiles`` times) = NumPy's tile with reps at ``axis``."""
    x = np.random.default_rng(3).normal(size=shape).astype(f32)
    (out,) = _run(graph_of, run_keras, f'type: "Tile" tile_param {{ axis: {axis} tiles: {tiles} }}', [shape], [x])
    reps = [1] * len(shape)
    reps[axis] = tiles
    np.testing.assert_array_equal(out, np.tile(x, reps))
