"""Fork layers of the reference executor: Upsample (both readings), MAX-pool mask,
SegNet/ENet BN, SSD Normalize / Permute, Tile, channel-shared PReLU.

Expectations are small arrays worked by hand from each fork's C++ semantics
(see the kernels' docstrings); float results are compared at 1e-6 relative,
far below any semantic mistake.
"""
from __future__ import annotations

import numpy as np
import pytest

from caffe2tf.errors import ShapeError
from caffe2tf.verification.reference import run_node


def _fork(node, reading: str):
    return node.with_(reading=reading)


# --------------------------------------------------------------- Upsample --

def test_upsample_nearest(make_node) -> None:
    node = _fork(make_node('type: "Upsample" upsample_param { scale: 2 }'), "nearest")
    x = np.array([[[[1, 2], [3, 4]]]], np.float32)
    (y,) = run_node(node, [x])
    np.testing.assert_array_equal(y[0, 0], [[1, 1, 2, 2], [1, 1, 2, 2],
                                            [3, 3, 4, 4], [3, 3, 4, 4]])


def test_upsample_nearest_scale_defaults_to_one(make_node) -> None:
    node = _fork(make_node('type: "Upsample"'), "nearest")
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    (y,) = run_node(node, [x])
    np.testing.assert_array_equal(y, x)


def test_unpool_scatters_by_mask_later_write_wins(make_node) -> None:
    node = _fork(make_node('type: "Upsample" upsample_param { scale: 2 }', n_in=2), "unpool")
    values = np.array([[[[5, 6], [7, 8]]]], np.float32)
    mask = np.array([[[[0, 3], [10, 10]]]], np.float32)  # 7 and 8 both go to index 10
    (y,) = run_node(node, [values, mask])
    want = np.zeros(16, np.float32)
    want[[0, 3, 10]] = [5, 6, 8]
    np.testing.assert_array_equal(y[0, 0], want.reshape(4, 4))


@pytest.mark.parametrize("params,shape", [
    ("upsample_h: 5 upsample_w: 3", (5, 3)),
    ("scale: 2 pad_out_h: true", (3, 4)),
    ("scale_h: 3 scale_w: 2 pad_out_w: true", (6, 3)),
])
def test_unpool_output_size(params: str, shape, make_node) -> None:
    node = _fork(make_node(f'type: "Upsample" upsample_param {{ {params} }}', n_in=2), "unpool")
    values = np.ones((1, 2, 2, 2), np.float32)
    mask = np.zeros((1, 2, 2, 2), np.float32)
    (y,) = run_node(node, [values, mask])
    assert y.shape == (1, 2) + shape


def test_unpool_mask_out_of_range_is_an_error(make_node) -> None:
    node = _fork(make_node('name: "up" type: "Upsample" upsample_param { scale: 2 }', n_in=2),
                 "unpool")
    with pytest.raises(ShapeError, match="'up'.*mask index 16"):
        run_node(node, [np.ones((1, 1, 2, 2), np.float32), np.full((1, 1, 2, 2), 16, np.float32)])


def test_upsample_without_reading_is_an_error(make_node) -> None:
    with pytest.raises(ShapeError, match="reading"):
        run_node(make_node('type: "Upsample"'), [np.ones((1, 1, 2, 2), np.float32)])


# ------------------------------------------------------------- pool mask --

def test_max_pool_mask_first_max_and_padding(make_node) -> None:
    node = make_node('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 }',
                     n_out=2)
    x = np.array([[[[1, 2, 2],
                    [2, 0, 9],
                    [5, 5, 1]]]], np.float32)
    y, mask = run_node(node, [x])
    # windows (with pad 1) cover rows {-1,0},{1,2} and cols {-1,0},{1,2}
    np.testing.assert_array_equal(y[0, 0], [[1, 2], [5, 9]])
    # (0,0) -> index 0; (0,1): 2 at (0,1) before the tie at (0,2) -> 1;
    # (1,0): 5 at (2,0) over 2 at (1,0) -> 6; (1,1): 9 at (1,2) -> 5
    np.testing.assert_array_equal(mask[0, 0], [[0, 1], [6, 5]])
    assert mask.dtype == np.float32


def test_mask_top_needs_max_pooling(make_node) -> None:
    node = make_node('type: "Pooling" pooling_param { pool: AVE kernel_size: 2 }', n_out=2)
    with pytest.raises(ShapeError, match="MAX"):
        run_node(node, [np.ones((1, 1, 4, 4), np.float32)])


# --------------------------------------------------------------- SegNet BN --

def test_segnet_bn_inference(make_node) -> None:
    node = _fork(make_node('type: "BN" bn_param { bn_mode: INFERENCE }',
                           [np.array([2.0, -1.0]), np.array([0.5, 3.0])]), "segnet")
    x = np.array([[[[1.0]], [[4.0]]]], np.float32)
    (y,) = run_node(node, [x])
    np.testing.assert_allclose(y.reshape(-1), [2.5, -1.0])


def test_segnet_bn_learn_uses_batch_statistics(make_node) -> None:
    # channel 0 over N, H, W: values 1, 3 (image 0) and 5, 7 (image 1): mean 4,
    # E[x^2] = (1 + 9 + 25 + 49) / 4 = 21, var = 21 - 16 = 5
    # channel 1 constant 2: var 0, so y = shift (eps 1e-9 keeps it finite)
    node = _fork(make_node('type: "BN"', [np.array([2.0, 1.0]), np.array([1.0, -3.0])], n_out=3),
                 "segnet")
    x = np.array([[[[1, 3]], [[2, 2]]], [[[5, 7]], [[2, 2]]]], np.float32)
    y, mean, var = run_node(node, [x])
    want0 = 2.0 * (np.array([[1, 3], [5, 7]]) - 4) / np.sqrt(5 + 1e-9) + 1.0
    np.testing.assert_allclose(y[:, 0, 0, :], want0, rtol=1e-6)
    np.testing.assert_allclose(y[:, 1], -3.0, rtol=1e-6)
    np.testing.assert_allclose(mean.reshape(-1), [4, 2])
    np.testing.assert_allclose(var.reshape(-1), [5, 0], atol=1e-6)
    assert mean.shape == var.shape == (1, 2, 1, 1)


def test_pspnet_bn_is_the_default_reading(make_node) -> None:
    w = [np.array([2.0]), np.array([1.0]), np.array([3.0]), np.array([4.0])]
    x = np.full((1, 1, 1, 2), 5.0, np.float32)
    for reading in (None, "pspnet"):
        node = make_node('type: "BN" bn_param { eps: 0 }', w).with_(reading=reading)
        (y,) = run_node(node, [x])
        np.testing.assert_allclose(y, 2.0 * (5 - 3) / 2 + 1)


# --------------------------------------------------------------- Normalize --

def test_normalize_across_spatial_eps_inside_root(make_node) -> None:
    node = make_node('type: "Normalize" norm_param { across_spatial: true channel_shared: true '
                     'eps: 0.01 }', [np.array(2.0)])
    x = np.array([[[[0.3]], [[0.4]]], [[[3.0]], [[0.0]]]], np.float32)  # per sample over C,H,W
    (y,) = run_node(node, [x])
    np.testing.assert_allclose(y[0].reshape(-1), np.array([0.3, 0.4]) / np.sqrt(0.26) * 2,
                               rtol=1e-6)
    np.testing.assert_allclose(y[1].reshape(-1), np.array([3.0, 0.0]) / np.sqrt(9.01) * 2,
                               rtol=1e-6)


def test_normalize_per_pixel_with_channel_scales(make_node) -> None:
    node = make_node('type: "Normalize" norm_param { across_spatial: false channel_shared: false '
                     'eps: 0 }', [np.array([1.0, 10.0])])
    x = np.array([[[[3.0, 1.0]], [[4.0, 0.0]]]], np.float32)  # pixel 0: (3,4), pixel 1: (1,0)
    (y,) = run_node(node, [x])
    np.testing.assert_allclose(y[0, :, 0, :], [[0.6, 1.0], [8.0, 0.0]], rtol=1e-6)


def test_normalize_scale_size_is_checked(make_node) -> None:
    node = make_node('type: "Normalize" norm_param { channel_shared: false }', [np.ones(3)])
    with pytest.raises(ShapeError, match="3 values for 2 channels"):
        run_node(node, [np.ones((1, 2, 2, 2), np.float32)])


# ---------------------------------------------------------- Permute / Tile --

@pytest.mark.parametrize("order,axes", [("order: 0 order: 2 order: 3 order: 1", (0, 2, 3, 1)),
                                        ("order: 0 order: 2", (0, 2, 1, 3)),
                                        ("", (0, 1, 2, 3))])
def test_permute(order: str, axes, make_node, rng) -> None:
    x = rng.randn(2, 3, 4, 5).astype(np.float32)
    (y,) = run_node(make_node(f'type: "Permute" permute_param {{ {order} }}'), [x])
    np.testing.assert_array_equal(y, np.transpose(x, axes))


def test_permute_rejects_repeats(make_node) -> None:
    with pytest.raises(ShapeError, match="repeats"):
        run_node(make_node('type: "Permute" permute_param { order: 1 order: 1 }'),
                 [np.ones((1, 2, 3, 4), np.float32)])


def test_tile_repeats_the_block_after_axis(make_node) -> None:
    x = np.arange(6, dtype=np.float32).reshape(1, 3, 2)
    (y,) = run_node(make_node('type: "Tile" tile_param { axis: 1 tiles: 2 }'), [x])
    assert y.shape == (1, 6, 2)
    for j in range(6):
        np.testing.assert_array_equal(y[0, j], x[0, j % 3])
    (z,) = run_node(make_node('type: "Tile" tile_param { axis: -1 tiles: 3 }'), [x])
    np.testing.assert_array_equal(z[0, 1], [2, 3, 2, 3, 2, 3])


def test_prelu_channel_shared_zero_d_blob(make_node) -> None:
    node = make_node('type: "PReLU" prelu_param { channel_shared: true }', [np.array(-0.5)])
    x = np.array([[[[-2.0, 3.0]], [[-4.0, 1.0]]]], np.float32)
    (y,) = run_node(node, [x])
    np.testing.assert_array_equal(y.reshape(-1), [1.0, 3.0, 2.0, 1.0])
