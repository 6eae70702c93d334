"""The issue-14 translators against the NumPy reference executor (an independent
implementation, itself checked against real Caffe) on parameter combinations the shared
cases do not record. 1e-5 is the one-semantic tolerance of the README."""
from __future__ import annotations

import numpy as np
import pytest

f32 = np.float32


@pytest.mark.parametrize("params,shape", [
    ("across_spatial: true channel_shared: true", (2, 3, 4, 5)),
    ("across_spatial: false channel_shared: false eps: 0.5", (2, 6, 3, 3)),
    ("across_spatial: true channel_shared: false", (1, 4, 2, 7)),
    ("across_spatial: false channel_shared: true eps: 1e-3", (3, 5, 1, 4)),
])
def test_normalize(check, params, shape):
    check(f'type: "Normalize" norm_param {{ {params} }}', [shape])


@pytest.mark.parametrize("params,fmap,image", [
    ("min_size: 30 max_size: 60 aspect_ratio: 2 flip: true clip: false variance: 0.1 variance: 0.1 "
     "variance: 0.2 variance: 0.2 step: 8", (1, 4, 5, 5), (1, 3, 40, 40)),
    ("min_size: 10.7 min_size: 25 max_size: 20.2 max_size: 41 aspect_ratio: 3 aspect_ratio: 1.5 flip: true "
     "clip: true", (1, 2, 3, 4), (1, 3, 30, 45)),
    ("min_size: 16 aspect_ratio: 0.5 flip: false img_size: 64 offset: 0", (1, 1, 4, 4), (1, 3, 10, 10)),
    ("min_size: 12 img_h: 50 img_w: 70 step_h: 9 step_w: 11 offset: 0.75 variance: 0.3", (1, 1, 5, 6),
     (1, 3, 1, 1)),
])
def test_prior_box(check, params, fmap, image):
    check(f'type: "PriorBox" prior_box_param {{ {params} }}', [fmap, image])


def _detection_inputs(seed, n, priors, classes, nloc):
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0, 0.7, (priors, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(0.1, 0.3, (priors, 2))], axis=1)
    prior = np.stack([boxes.reshape(-1), np.tile([0.1, 0.1, 0.2, 0.2], priors)])[None].astype(f32)
    loc = rng.normal(0, 0.3, (n, priors * nloc * 4)).astype(f32)
    logits = rng.normal(0, 2, (n, priors, classes))
    conf = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).reshape(n, -1).astype(f32)
    return [loc, conf, prior]


@pytest.mark.parametrize("params,n,classes,share", [
    ("code_type: CENTER_SIZE confidence_threshold: 0.1 nms_param { nms_threshold: 0.45 top_k: 8 } keep_top_k: 6",
     2, 4, True),
    ("code_type: CORNER_SIZE share_location: false background_label_id: 1 nms_param { nms_threshold: 0.3 eta: 0.8 }",
     3, 3, False),
    ("code_type: CORNER variance_encoded_in_target: true background_label_id: 1 keep_top_k: 4 "
     "nms_param { nms_threshold: 0.6 }", 1, 3, True),
])
def test_detection_output(check, params, n, classes, share):
    priors, nloc = 24, 1 if share else classes
    inputs = _detection_inputs(7, n, priors, classes, nloc)
    _, _, (rows,) = check(f'type: "DetectionOutput" detection_output_param {{ num_classes: {classes} {params} }}',
                          [a.shape for a in inputs], inputs=inputs)
    assert rows.shape[2] > 1  # some detections: the comparison covers NMS, not only the empty case


@pytest.mark.parametrize("params,shape", [
    ("pool: MAX kernel_size: 3 stride: 2", (1, 2, 8, 8)),
    ("pool: MAX kernel_size: 3 stride: 2 pad: 1", (2, 3, 7, 9)),
    ("pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1", (1, 2, 6, 5)),
])
def test_max_pooling_mask(check, params, shape):
    check(f'type: "Pooling" top: "y" top: "mask" pooling_param {{ {params} }}', [shape])


@pytest.mark.parametrize("params,shape", [("axis: 1 tiles: 2", (2, 3, 4, 5)), ("axis: 3 tiles: 3", (1, 2, 3, 2)),
                                          ("axis: 1 tiles: 4", (2, 5))])
def test_tile(check, params, shape):
    check(f'type: "Tile" tile_param {{ {params} }}', [shape])
