"""SSD layers beyond the shared real-Caffe cases: PriorBox options with hand-derived boxes,
DetectionOutput against a line-by-line transcription of weiliu89's C++ loops, and its
edge cases (NMS boundary, eta, ties, strict threshold, empty results, batches)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2tf.caffe_proto import caffe_pb2
from caffe2tf.frontend import shapes
from caffe2tf.backend.build import build_keras_model
from caffe2tf.backend.prior_box import PriorBoxSpec, prior_boxes
from caffe2tf.backend.layers.ssd import CaffeDetectionOutput

f32 = np.float32


def _spec(text: str) -> PriorBoxSpec:
    return PriorBoxSpec.from_param(text_format.Parse(text, caffe_pb2.PriorBoxParameter()))


# ---------------------------------------------------------------- PriorBox -------------------

def test_prior_box_one_cell_by_hand():
    """1x1 map on a 10x10 image: step 10, centre 5. min 4 -> side 4; max 9 -> sqrt(36) = 6;
    ratio 2 -> 4*sqrt(2) x 4/sqrt(2), its flip 0.5 -> the transpose."""
    spec = _spec("min_size: 4 max_size: 9 aspect_ratio: 2 flip: true clip: false "
                 "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2")
    out = prior_boxes(spec, (1, 1), (10, 10))
    assert out.shape == (1, 2, 4 * 4) and spec.num_priors() == 4
    r = math.sqrt(2)
    want = [[3, 3, 7, 7], [2, 2, 8, 8], [5 - 2 * r, 5 - 2 / r, 5 + 2 * r, 5 + 2 / r],
            [5 - 2 / r, 5 - 2 * r, 5 + 2 / r, 5 + 2 * r]]
    np.testing.assert_allclose(out[0, 0].reshape(4, 4), np.array(want) / 10, atol=1e-7)
    np.testing.assert_array_equal(out[0, 1], np.tile(f32([0.1, 0.1, 0.2, 0.2]), 4))


def test_prior_box_ratio_list_drops_duplicates_and_flips_in_order():
    spec = _spec("min_size: 8 aspect_ratio: 2 aspect_ratio: 0.5 aspect_ratio: 3 aspect_ratio: 1 flip: true")
    assert [float(a) for a in spec.aspect_ratio_list()] == pytest.approx([1, 2, 0.5, 3, 1 / 3])
    assert spec.num_priors() == 5 == shapes.num_priors(
        text_format.Parse("min_size: 8 aspect_ratio: 2 aspect_ratio: 0.5 aspect_ratio: 3 aspect_ratio: 1",
                          caffe_pb2.PriorBoxParameter()))
    assert len(_spec("min_size: 8 aspect_ratio: 2 flip: false").aspect_ratio_list()) == 2


def test_prior_box_truncates_sizes_to_int():
    """Caffe reads min_size/max_size into int: 20.9 / 37.9 behave as 20 / 37."""
    a = prior_boxes(_spec("min_size: 20.9 max_size: 37.9"), (2, 3), (50, 60))
    b = prior_boxes(_spec("min_size: 20 max_size: 37"), (2, 3), (50, 60))
    np.testing.assert_array_equal(a, b)
    side = a[0, 0].reshape(-1, 4)[1]
    assert (side[2] - side[0]) * 60 == pytest.approx(math.sqrt(20 * 37), rel=1e-5)


def test_prior_box_image_size_and_steps():
    """Centres (w + offset) * step; step from step_h/step_w, or image size / map size where
    the image size is img_h/img_w (else img_size, else the data blob's)."""
    # img_size 100 on a 4x5 map: steps 25 (h) and 20 (w); offset 0.25
    out = prior_boxes(_spec("min_size: 10 img_size: 100 offset: 0.25"), (4, 5), (7, 9))
    boxes = out[0, 0].reshape(4, 5, 1, 4)
    np.testing.assert_allclose(boxes[2, 3, 0], [(3.25 * 20 - 5) / 100, (2.25 * 25 - 5) / 100,
                                                (3.25 * 20 + 5) / 100, (2.25 * 25 + 5) / 100], atol=1e-7)
    # explicit steps win over the image size; img_h/img_w divide
    out = prior_boxes(_spec("min_size: 10 img_h: 40 img_w: 80 step_h: 3 step_w: 7"), (2, 2), (1, 1))
    np.testing.assert_allclose(out[0, 0].reshape(2, 2, 4)[1, 1], [(1.5 * 7 - 5) / 80, (1.5 * 3 - 5) / 40,
                                                                  (1.5 * 7 + 5) / 80, (1.5 * 3 + 5) / 40],
                               atol=1e-7)
    # a single step applies to both axes; the data blob gives the image size
    out = prior_boxes(_spec("min_size: 2 step: 4"), (1, 2), (8, 16))
    np.testing.assert_allclose(out[0, 0].reshape(2, 4)[1], [(6 - 1) / 16, (2 - 1) / 8, (6 + 1) / 16, (2 + 1) / 8],
                               atol=1e-7)


def test_prior_box_clip_clamps_boxes_not_variances():
    out = prior_boxes(_spec("min_size: 30 clip: true variance: 2.5"), (2, 2), (20, 20))
    assert out[0, 0].min() == 0 and out[0, 0].max() == 1
    np.testing.assert_array_equal(out[0, 1], np.full(16, f32(2.5)))
    unclipped = prior_boxes(_spec("min_size: 30 clip: false"), (2, 2), (20, 20))
    assert unclipped[0, 0].min() < 0 and unclipped[0, 0].max() > 1
    np.testing.assert_array_equal(unclipped[0, 1], np.full(16, f32(0.1)))  # default variance


def test_prior_box_several_min_sizes_order():
    """Per min size: its square, its sqrt(min*max) square, then its ratios."""
    out = prior_boxes(_spec("min_size: 2 min_size: 6 max_size: 4 max_size: 10 aspect_ratio: 4 flip: false"),
                      (1, 1), (20, 20))
    widths = [(b[2] - b[0]) * 20 for b in out[0, 0].reshape(-1, 4)]
    assert widths == pytest.approx([2, math.sqrt(8), 4, 6, math.sqrt(60), 12], rel=1e-6)


@pytest.mark.parametrize("text", ["", "min_size: 4 max_size: 3", "min_size: 4 variance: 1 variance: 2",
                                  "min_size: 4 min_size: 5 max_size: 9"])
def test_prior_box_bad_parameters(text):
    with pytest.raises(ValueError):
        _spec(text)


# ------------------------------------------------------------ DetectionOutput ----------------

def _decode_one(p, v, l, code: str, vit: bool):
    if code == "corner":
        return [p[i] + l[i] if vit else p[i] + v[i] * l[i] for i in range(4)]
    pw, ph = p[2] - p[0], p[3] - p[1]
    if code == "corner_size":
        s = [pw, ph, pw, ph]
        return [p[i] + l[i] * s[i] if vit else p[i] + v[i] * l[i] * s[i] for i in range(4)]
    pcx, pcy = f32((p[0] + p[2]) / f32(2)), f32((p[1] + p[3]) / f32(2))
    if vit:
        cx, cy, w, h = l[0] * pw + pcx, l[1] * ph + pcy, np.exp(l[2]) * pw, np.exp(l[3]) * ph
    else:
        cx, cy = v[0] * l[0] * pw + pcx, v[1] * l[1] * ph + pcy
        w, h = np.exp(v[2] * l[2]) * pw, np.exp(v[3] * l[3]) * ph
    return [cx - w / f32(2), cy - h / f32(2), cx + w / f32(2), cy + h / f32(2)]


def _size(b):
    if b[2] < b[0] or b[3] < b[1]:
        return f32(0)
    return f32((b[2] - b[0]) * (b[3] - b[1]))


def _jaccard(b1, b2):
    if b2[0] > b1[2] or b2[2] < b1[0] or b2[1] > b1[3] or b2[3] < b1[1]:
        return f32(0)
    iw = min(b1[2], b2[2]) - max(b1[0], b2[0])
    ih = min(b1[3], b2[3]) - max(b1[1], b2[1])
    if iw > 0 and ih > 0:
        inter = f32(iw * ih)
        return f32(inter / (_size(b1) + _size(b2) - inter))
    return f32(0)


def caffe_detection_output(loc, conf, prior, *, num_classes, share_location=True, background=0, nms=0.3,
                           top_k=-1, eta=1.0, keep_top_k=-1, threshold=None, code="corner", vit=False):
    """detection_output_layer.cpp Forward_cpu + bbox_util.cpp, transcribed loop by loop
    (scalar float32 arithmetic; Python's sort is stable like std::stable_sort)."""
    n, p_count = loc.shape[0], prior.shape[2] // 4
    nloc = 1 if share_location else num_classes
    loc = loc.reshape(n, p_count, nloc, 4)
    conf = conf.reshape(n, p_count, num_classes)
    pbox, pvar = prior[0, 0].reshape(p_count, 4), prior[0, 1].reshape(p_count, 4)
    thr = f32(-np.finfo(f32).max) if threshold is None else f32(threshold)
    rows = []
    for i in range(n):
        decoded = {}
        for c in range(nloc):
            label = -1 if share_location else c
            if label == background:
                continue
            decoded[label] = [_decode_one(pbox[q], pvar[q], loc[i, q, c], code, vit) for q in range(p_count)]
        indices, num_det = {}, 0
        for c in range(num_classes):
            if c == background:
                continue
            scores = conf[i, :, c]
            boxes = decoded[-1 if share_location else c]
            cand = sorted(((scores[q], q) for q in range(p_count) if scores[q] > thr), key=lambda t: -t[0])
            if -1 < top_k < len(cand):
                cand = cand[:top_k]
            kept, adapt = [], f32(nms)
            for _, idx in cand:
                keep = True
                for k in kept:
                    if keep:
                        keep = _jaccard(boxes[idx], boxes[k]) <= adapt
                    else:
                        break
                if keep:
                    kept.append(idx)
                if keep and eta < 1 and adapt > 0.5:
                    adapt = f32(adapt * f32(eta))
            indices[c] = kept
            num_det += len(kept)
        if -1 < keep_top_k < num_det:
            pairs = sorted(((conf[i, idx, c], c, idx) for c in sorted(indices) for idx in indices[c]),
                           key=lambda t: -t[0])[:keep_top_k]
            indices = {}
            for _, c, idx in pairs:
                indices.setdefault(c, []).append(idx)
        for c in sorted(indices):
            boxes = decoded[-1 if share_location else c]
            rows.extend([i, c, conf[i, idx, c], *boxes[idx]] for idx in indices[c])
    if not rows:
        rows = [[i] + [-1] * 6 for i in range(n)]
    return np.array(rows, f32)


def _random_inputs(seed, n, p_count, num_classes, share_location, code):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(3, 2))[rng.integers(0, 3, p_count)] + rng.normal(0, 0.03, (p_count, 2))
    half = rng.uniform(0.05, 0.2, size=(p_count, 2))
    pbox = np.concatenate([centres - half, centres + half], axis=1)
    var = np.tile([0.1, 0.1, 0.2, 0.2], (p_count, 1))
    prior = np.stack([pbox.reshape(-1), var.reshape(-1)])[None].astype(f32)
    nloc = 1 if share_location else num_classes
    scale = 0.3 if code != "corner" else 0.05
    loc = (rng.normal(0, scale, (n, p_count * nloc * 4))).astype(f32)
    logits = rng.normal(0, 1.5, (n, p_count, num_classes))
    conf = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).reshape(n, -1).astype(f32)
    return loc, conf, prior


def _detection_graph(graph_of, text, n, p_count, num_classes, share_location):
    nloc = 1 if share_location else num_classes
    return graph_of(f'type: "DetectionOutput" detection_output_param {{ num_classes: {num_classes} {text} }}',
                    [(n, p_count * nloc * 4), (n, p_count * num_classes), (1, 2, p_count * 4)])


CONFIGS = [
    # (prototxt fields, oracle kwargs, batch, priors, classes)
    ("share_location: true background_label_id: 0 code_type: CENTER_SIZE confidence_threshold: 0.05 "
     "nms_param { nms_threshold: 0.45 top_k: 10 }",
     dict(code="center_size", threshold=0.05, nms=0.45, top_k=10), 2, 40, 3),
    ("share_location: false background_label_id: -1 code_type: CORNER variance_encoded_in_target: true "
     "keep_top_k: 5 nms_param { nms_threshold: 0.6 eta: 0.7 }",
     dict(share_location=False, background=-1, code="corner", vit=True, keep_top_k=5, nms=0.6, eta=0.7), 3, 30, 3),
    ("background_label_id: 2 code_type: CORNER_SIZE keep_top_k: 7 nms_param { nms_threshold: 0.3 }",
     dict(background=2, code="corner_size", keep_top_k=7, nms=0.3), 1, 50, 3),
    ("code_type: CENTER_SIZE variance_encoded_in_target: true confidence_threshold: 0.2 keep_top_k: 3 "
     "nms_param { nms_threshold: 0.5 top_k: 6 eta: 0.9 }",
     dict(code="center_size", vit=True, threshold=0.2, keep_top_k=3, nms=0.5, top_k=6, eta=0.9), 4, 25, 4),
    ("code_type: CENTER_SIZE confidence_threshold: 0.999 nms_param { nms_threshold: 0.45 }",
     dict(code="center_size", threshold=0.999, nms=0.45), 2, 20, 2),
]


@pytest.mark.parametrize("text,kwargs,n,p_count,num_classes", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_detection_output_matches_caffe_loops(graph_of, run_keras, text, kwargs, n, p_count, num_classes, seed):
    share = kwargs.get("share_location", True)
    loc, conf, prior = _random_inputs(seed, n, p_count, num_classes, share, kwargs["code"])
    want = caffe_detection_output(loc, conf, prior, num_classes=num_classes, **kwargs)
    g = _detection_graph(graph_of, text, n, p_count, num_classes, share)
    got = run_keras(build_keras_model(g, outputs="all"), g, [loc, conf, prior])["out"]
    assert got.shape == (1, 1, len(want), 7)
    # same rows in the same order; coordinates may differ by TF's float32 exp (~1 ulp), and the
    # README asks for rows equal within 1e-5
    np.testing.assert_array_equal(got[0, 0, :, :2], want[:, :2])
    np.testing.assert_allclose(got[0, 0, :, 2:], want[:, 2:], rtol=0, atol=1e-6)


def _layer_rows(boxes, scores, *, prior=None, **kwargs):
    """Run CaffeDetectionOutput on decoded-as-given boxes (CORNER, variance in target, zero
    priors) for one image; scores (P, C) with class 0 as background."""
    boxes, scores = np.asarray(boxes, f32), np.asarray(scores, f32)
    p_count, num_classes = scores.shape
    prior = np.zeros((1, 2, p_count * 4), f32) if prior is None else prior
    layer = CaffeDetectionOutput(num_classes, p_count, code_type="corner", variance_encoded_in_target=True, **kwargs)
    out = np.asarray(layer([boxes.reshape(1, -1), scores.reshape(1, -1), prior]))
    assert out.shape[0] == 1 and out.shape[2:] == (7, 1)
    return out[0, :, :, 0]


def test_nms_keeps_overlap_equal_to_threshold():
    """ApplyNMSFast keeps a box whose overlap is <= the threshold: IoU exactly 0.5 here
    (0.125 / (0.25 + 0.125 - 0.125), exact in float32)."""
    boxes = [[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.25]]
    scores = [[0, 0.9], [0, 0.8]]
    assert len(_layer_rows(boxes, scores, nms_threshold=0.5)) == 2
    rows = _layer_rows(boxes, scores, nms_threshold=0.49)
    np.testing.assert_allclose(rows, [[0, 1, 0.9, 0, 0, 0.5, 0.5]], atol=1e-7)


def test_touching_and_invalid_boxes_do_not_overlap():
    """Boxes sharing an edge have intersection width 0 -> overlap 0; an inverted box has size 0."""
    boxes = [[0, 0, 0.5, 0.5], [0.5, 0, 1, 0.5], [0.3, 0.3, 0.1, 0.1]]
    scores = [[0, 0.9], [0, 0.8], [0, 0.7]]
    assert len(_layer_rows(boxes, scores, nms_threshold=0.0)) == 3


def test_adaptive_eta():
    """After each kept box the threshold is multiplied by eta while it is > 0.5:
    0.8 -> 0.4 after the first, so the second (IoU 0.5 with the first) is suppressed."""
    boxes = [[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.25], [0.6, 0.6, 0.9, 0.9]]
    scores = [[0, 0.9], [0, 0.8], [0, 0.7]]
    assert len(_layer_rows(boxes, scores, nms_threshold=0.8)) == 3
    rows = _layer_rows(boxes, scores, nms_threshold=0.8, eta=0.5)
    np.testing.assert_allclose(rows[:, 2], [0.9, 0.7])


def test_threshold_is_strict_and_top_k_cuts_before_nms():
    boxes = [[0, 0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3], [0.4, 0.4, 0.5, 0.5], [0.6, 0.6, 0.7, 0.7]]
    scores = [[0, 0.5], [0, 0.25], [0, 0.75], [0, 0.6]]
    rows = _layer_rows(boxes, scores, confidence_threshold=0.25)
    np.testing.assert_allclose(rows[:, 2], [0.75, 0.6, 0.5])
    rows = _layer_rows(boxes, scores, top_k=2)
    np.testing.assert_allclose(rows[:, 2], [0.75, 0.6])


def test_ties_keep_prior_order_and_keep_top_k_regroups_by_label():
    boxes = [[0, 0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3], [0.4, 0.4, 0.5, 0.5]]
    scores = [[0, 0.5, 0.9], [0, 0.5, 0.1], [0, 0.7, 0.3]]
    rows = _layer_rows(boxes, scores)
    assert rows[:, 1].tolist() == [1, 1, 1, 2, 2, 2]
    np.testing.assert_allclose(rows[:3, 3], [0.4, 0, 0.2], atol=1e-7)  # 0.7, then the 0.5 tie in prior order
    rows = _layer_rows(boxes, scores, keep_top_k=3)  # best three overall: 0.9 (2), 0.7 (1), 0.5 (1, prior 0)
    assert rows[:, 1].tolist() == [1, 1, 2]
    np.testing.assert_allclose(rows[:, 2], [0.7, 0.5, 0.9])
    np.testing.assert_allclose(rows[:2, 3], [0.4, 0], atol=1e-7)


def test_center_size_decoding_by_hand_not_clipped():
    """prior (0.2, 0.2, 0.6, 0.6), variances (0.1, 0.1, 0.2, 0.2), loc (1, -1, 0, 5 ln 2):
    centre (0.44, 0.36), size (0.4, 0.8) -> (0.24, -0.04, 0.64, 0.76): ymin stays below 0."""
    prior = np.array([[[0.2, 0.2, 0.6, 0.6]], [[0.1, 0.1, 0.2, 0.2]]], f32).reshape(1, 2, 4)
    loc = np.array([[1, -1, 0, 5 * math.log(2)]], f32)
    layer = CaffeDetectionOutput(2, 1, code_type="center_size")
    rows = np.asarray(layer([loc, np.array([[0.1, 0.9]], f32), prior]))[0, :, :, 0]
    np.testing.assert_allclose(rows, [[0, 1, 0.9, 0.24, -0.04, 0.64, 0.76]], atol=1e-6)


def test_empty_and_mixed_batches():
    """No detection anywhere: one [i, -1 x 6] row per image. Some images empty: no row for them."""
    p_count = 2
    prior = np.zeros((1, 2, 8), f32)
    loc = np.tile(np.array([[0, 0, 0.1, 0.1, 0.5, 0.5, 0.6, 0.6]], f32), (3, 1))
    layer = CaffeDetectionOutput(2, p_count, code_type="corner", variance_encoded_in_target=True,
                                 confidence_threshold=0.5)
    none = np.asarray(layer([loc, np.full((3, 4), 0.2, f32), prior]))[0, :, :, 0]
    np.testing.assert_array_equal(none, [[0, -1, -1, -1, -1, -1, -1], [1, -1, -1, -1, -1, -1, -1],
                                         [2, -1, -1, -1, -1, -1, -1]])
    conf = np.full((3, 4), 0.2, f32)
    conf[1, 3] = 0.8
    mixed = np.asarray(layer([loc, conf, prior]))[0, :, :, 0]
    np.testing.assert_allclose(mixed, [[1, 1, 0.8, 0.5, 0.5, 0.6, 0.6]], atol=1e-7)


def test_only_background_class_gives_the_empty_convention():
    layer = CaffeDetectionOutput(1, 1, code_type="corner")
    rows = np.asarray(layer([np.zeros((2, 4), f32), np.ones((2, 1), f32), np.zeros((1, 2, 4), f32)]))
    np.testing.assert_array_equal(rows[0, :, :, 0], [[0] + [-1] * 6, [1] + [-1] * 6])


def test_nhwc_inputs_are_read_in_caffe_order():
    """loc/conf given as 4-D (N, K, 1, 1) Caffe values arrive NHWC (N, 1, 1, K)."""
    boxes = np.array([[0, 0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9]], f32)
    scores = np.array([[0, 0.3], [0, 0.6]], f32)
    layer = CaffeDetectionOutput(2, 2, code_type="corner", variance_encoded_in_target=True,
                                 nhwc_inputs=[True, True, False])
    rows = np.asarray(layer([boxes.reshape(1, 1, 1, 8), scores.reshape(1, 1, 1, 4), np.zeros((1, 2, 8), f32)]))
    np.testing.assert_allclose(rows[0, :, 3:, 0], boxes[::-1], atol=1e-7)


@pytest.mark.parametrize("kwargs", [dict(code_type="x"), dict(eta=0), dict(eta=1.5), dict(nms_threshold=-1),
                                    dict(share_location=True, background_label_id=-1)])
def test_detection_output_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        CaffeDetectionOutput(2, 4, **kwargs)


def test_save_output_and_visualize_are_ignored_with_a_warning(tmp_path, caplog):
    """weiliu89's generated deploy prototxts carry save_output_param (result files) and
    visualize; in Caffe neither changes the top, so the conversion warns and goes on."""
    from pathlib import Path

    from caffe2tf.frontend.reader import load_net
    from caffe2tf.backend import layout
    from caffe2tf.verification.reference_file import read_reference

    case = Path(__file__).resolve().parents[2].parent / "shared" / "caffe_reference" / "detectionoutput_basic"
    text = (case / "net.prototxt").read_text().replace(
        "confidence_threshold: 0.01 }",
        'confidence_threshold: 0.01 visualize: true save_output_param { output_directory: "/nonexistent/out" '
        'output_name_prefix: "comp4_det_test_" output_format: "VOC" } }')
    assert "save_output_param" in text
    net = tmp_path / "deploy.prototxt"
    net.write_text(text)
    graph = load_net(net, case / "weights.caffemodel")
    with caplog.at_level("WARNING"):
        model = build_keras_model(graph).model
    assert any("save_output_param" in r.getMessage() for r in caplog.records)
    ref = read_reference(case / "reference.h5")
    feeds = [layout.nchw_to_keras(ref.inputs[graph.values[v].blob]) for v in graph.inputs]
    got = np.asarray(model(feeds))
    want = ref.layers[-1].outputs[0].array  # [1, 1, rows, 7]
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-5)  # README: rows within 1e-5
    assert not Path("/nonexistent/out").exists()
