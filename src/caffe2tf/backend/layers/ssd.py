"""Keras layers for SSD's Normalize, PriorBox and DetectionOutput (weiliu89/caffe semantics).

Registered serializable under the package ``caffe2tf``: importing this module is all
``keras.models.load_model`` needs. Numbers (scales, prior boxes) are Keras weights set
by the translators; configs hold only hyper-parameters. Inputs of rank 4 are NHWC
(see ``layout.py``); other ranks keep Caffe's axis order.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

from caffe2tf.backend.layers._base import serializable

CODE_TYPES = ("corner", "center_size", "corner_size")
#: -FLT_MAX: DetectionOutput's confidence threshold when the prototxt sets none.
NO_THRESHOLD = float(-np.finfo(np.float32).max)


@serializable
class CaffeConstant(keras.layers.Layer):
    """A value fixed at conversion time (e.g. PriorBox's boxes), ignoring its input.

    Args:
        shape: the constant's full shape (batch axis included, as Caffe gives it).

    Input shape: any tensor (only ties the constant into the graph).
    Output shape: ``shape``; the value is the non-trainable weight ``value``.
    """

    def __init__(self, shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.shape = tuple(int(d) for d in shape)
        if any(d <= 0 for d in self.shape):
            raise ValueError(f"shape must be positive, received shape={self.shape}")

    def build(self, input_shape):
        self.value = self.add_weight(name="value", shape=self.shape, initializer="zeros", trainable=False)

    def call(self, x):
        return ops.convert_to_tensor(self.value)

    def compute_output_shape(self, input_shape):
        return self.shape

    def get_config(self):
        return {**super().get_config(), "shape": list(self.shape)}


@serializable
class CaffeNormalize(keras.layers.Layer):
    """SSD's Normalize (L2 norm with eps inside the root, then a learned scale).

    ``across_spatial``: ``x * (1 / sqrt(sum over C, H, W of x^2 + eps)) * s`` per sample;
    else ``x / sqrt(sum over C of x^2 + eps) * s`` per pixel. ``s`` is one value
    (``channel_shared``) or one per channel (the weight ``scale``, shape ``(1,)`` or ``(C,)``).

    Args:
        channels: number of channels (size of ``scale`` unless ``channel_shared``).
        across_spatial, channel_shared, eps: as in ``NormalizeParameter``.
        channel_axis: the Keras axis of Caffe's channel axis (-1 for NHWC).

    Input shape: ``(N, ..., C)`` with the channels on ``channel_axis``.
    Output shape: same as input.
    """

    def __init__(self, channels: int, across_spatial: bool = True, channel_shared: bool = True,
                 eps: float = 1e-10, channel_axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.across_spatial = int(channels), bool(across_spatial)
        self.channel_shared, self.eps, self.channel_axis = bool(channel_shared), float(eps), int(channel_axis)

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(1,) if self.channel_shared else (self.channels,),
                                     initializer="ones")

    def call(self, x):
        rank = len(x.shape)
        axis = self.channel_axis % rank
        sq = x * x
        eps = np.float32(self.eps)
        if self.across_spatial:
            norm = ops.sqrt(ops.sum(sq, axis=list(range(1, rank)), keepdims=True) + eps)
            y = x * (1.0 / norm)
        else:
            y = x / ops.sqrt(ops.sum(sq, axis=axis, keepdims=True) + eps)
        if self.channel_shared:
            return y * self.scale[0]
        shape = [1] * rank
        shape[axis] = self.channels
        return y * ops.reshape(self.scale, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "across_spatial": self.across_spatial,
                "channel_shared": self.channel_shared, "eps": self.eps, "channel_axis": self.channel_axis}


@serializable
class CaffeDetectionOutput(keras.layers.Layer):
    """SSD's DetectionOutput as TensorFlow ops (``detection_output_layer.cpp`` and
    ``bbox_util.cpp`` of weiliu89/caffe, reproduced step by step in float32):

    1. decode every prior's box (CORNER, CENTER_SIZE or CORNER_SIZE; variances from the
       prior blob unless ``variance_encoded_in_target``), not clipped;
    2. per image, per class but ``background_label_id``: the scores ``> confidence_threshold``
       in descending order (ties: lower prior first, ``std::stable_sort``), cut to ``top_k``;
    3. Caffe's greedy NMS (``ApplyNMSFast``): a candidate is kept when its Jaccard overlap
       (normalised boxes, no +1; 0 unless the intersection has positive width and height;
       an invalid box has size 0) with every box kept so far is ``<= threshold``; after each
       kept box the threshold is multiplied by ``eta`` while it is above 0.5;
    4. if more than ``keep_top_k`` survive in an image, the ``keep_top_k`` best scores over
       all classes (ties: lower label, then NMS order);
    5. rows ``[image, label, score, xmin, ymin, xmax, ymax]`` grouped by image, label
       ascending, NMS order; when no image has a row: one ``[i, -1, -1, -1, -1, -1, -1]``
       per image.

    Args:
        num_classes, num_priors: as the bottoms' shapes give them.
        share_location, background_label_id, nms_threshold, top_k (-1: all), eta,
        keep_top_k (-1: all), confidence_threshold, variance_encoded_in_target: as in
        ``DetectionOutputParameter``; code_type: ``"corner" | "center_size" | "corner_size"``.
        nhwc_inputs: per bottom, whether its Keras tensor is a 4-D NHWC value (brought back
            to Caffe's element order before use).

    Input shape: ``[loc (N, P*4*L), conf (N, P*C), prior (1, 2, P*4)]`` in any shapes holding
        those elements in Caffe's order (``L = 1`` with ``share_location``, else ``C``).
    Output shape: ``(1, rows, 7, 1)``: the NHWC layout of Caffe's ``[1, 1, rows, 7]`` (same
        element order); ``rows`` depends on the data.
    """

    def __init__(self, num_classes: int, num_priors: int, share_location: bool = True,
                 background_label_id: int = 0, nms_threshold: float = 0.3, top_k: int = -1,
                 eta: float = 1.0, keep_top_k: int = -1, confidence_threshold: float = NO_THRESHOLD,
                 code_type: str = "corner", variance_encoded_in_target: bool = False,
                 nhwc_inputs: Sequence[bool] = (False, False, False), **kwargs):
        super().__init__(**kwargs)
        if code_type not in CODE_TYPES:
            raise ValueError(f"code_type must be one of {CODE_TYPES}, received code_type={code_type!r}")
        if num_classes < 1 or num_priors < 1:
            raise ValueError(f"num_classes and num_priors must be positive, received {num_classes}, {num_priors}")
        if not 0 < eta <= 1:
            raise ValueError(f"eta must be in (0, 1], received eta={eta}")
        if nms_threshold < 0:
            raise ValueError(f"nms_threshold must be >= 0, received nms_threshold={nms_threshold}")
        if share_location and background_label_id == -1:
            # DecodeBBoxesAll skips the shared location label -1 as "background"; Caffe then aborts
            raise ValueError("share_location with background_label_id -1 has no decoded boxes in Caffe "
                             "(its Forward aborts)")
        self.num_classes, self.num_priors = int(num_classes), int(num_priors)
        self.share_location, self.background_label_id = bool(share_location), int(background_label_id)
        self.nms_threshold, self.top_k, self.eta = float(nms_threshold), int(top_k), float(eta)
        self.keep_top_k, self.confidence_threshold = int(keep_top_k), float(confidence_threshold)
        self.code_type, self.variance_encoded_in_target = code_type, bool(variance_encoded_in_target)
        self.nhwc_inputs = [bool(b) for b in nhwc_inputs]
        self.classes = [c for c in range(self.num_classes) if c != self.background_label_id]

    def compute_output_shape(self, input_shape):
        return (1, None, 7, 1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "num_priors": self.num_priors,
                "share_location": self.share_location, "background_label_id": self.background_label_id,
                "nms_threshold": self.nms_threshold, "top_k": self.top_k, "eta": self.eta,
                "keep_top_k": self.keep_top_k, "confidence_threshold": self.confidence_threshold,
                "code_type": self.code_type, "variance_encoded_in_target": self.variance_encoded_in_target,
                "nhwc_inputs": self.nhwc_inputs}

    # -- the computation -------------------------------------------------------------------------
    def call(self, inputs):
        import tensorflow as tf

        loc, conf, prior = (self._caffe_order(t, nhwc) for t, nhwc in zip(inputs, self.nhwc_inputs))
        n = tf.shape(loc)[0]
        P, C = self.num_priors, self.num_classes
        L = 1 if self.share_location else C
        loc = tf.reshape(loc, [n, P, L, 4])
        conf = tf.reshape(conf, [n, P, C])
        prior = tf.reshape(prior, [-1, 2, P, 4])[0]
        if not self.classes:
            return self._rows_or_empty(tf.zeros([0, 7], tf.float32), n)
        boxes = self._decode(prior[0], prior[1], loc)                         # [n, P, L, 4]
        cls = tf.constant(self.classes, tf.int32)
        scores = tf.transpose(tf.gather(conf, cls, axis=2), [0, 2, 1])        # [n, C', P]
        if self.share_location:
            cls_boxes = tf.broadcast_to(boxes[:, None, :, 0, :], [n, len(self.classes), P, 4])
        else:
            cls_boxes = tf.transpose(tf.gather(boxes, cls, axis=2), [0, 2, 1, 3])  # [n, C', P, 4]
        k = P if self.top_k < 0 else min(self.top_k, P)
        valid = scores > np.float32(self.confidence_threshold)
        masked = tf.where(valid, scores, tf.constant(-np.inf, tf.float32))
        top_scores, top_idx = tf.math.top_k(masked, k=k, sorted=True)   # ties: lower index first
        n_valid = tf.minimum(tf.reduce_sum(tf.cast(valid, tf.int32), axis=-1), k)  # [n, C']
        cand = tf.gather(cls_boxes, top_idx, batch_dims=2)                  # [n, C', k, 4]
        kept = self._nms(cand, n_valid, k)                                  # [n, C', k] bool
        if self.keep_top_k > -1:
            kept = self._keep_top_k(kept, top_scores, n, k)
        where = tf.cast(tf.where(kept), tf.int32)                           # image, class', rank
        rows = tf.concat([
            tf.cast(where[:, :1], tf.float32),
            tf.cast(tf.gather(cls, where[:, 1])[:, None], tf.float32),
            tf.gather_nd(top_scores, where)[:, None],
            tf.gather_nd(cand, where)], axis=1)
        return self._rows_or_empty(rows, n)

    def _caffe_order(self, t, nhwc: bool):
        import tensorflow as tf

        if nhwc:
            t = tf.transpose(t, [0, 3, 1, 2])
        return tf.reshape(t, [tf.shape(t)[0], -1])

    def _decode(self, pbox, pvar, loc):
        """Caffe's DecodeBBox for every prior; float32, same operation order."""
        import tensorflow as tf

        p = [pbox[None, :, None, i] for i in range(4)]
        v = [pvar[None, :, None, i] for i in range(4)]
        l = [loc[..., i] for i in range(4)]
        vit = self.variance_encoded_in_target
        if self.code_type == "corner":
            out = [p[i] + l[i] if vit else p[i] + v[i] * l[i] for i in range(4)]
        else:
            pw, ph = p[2] - p[0], p[3] - p[1]
            if self.code_type == "center_size":
                pcx, pcy = (p[0] + p[2]) * 0.5, (p[1] + p[3]) * 0.5
                if vit:
                    cx, cy = l[0] * pw + pcx, l[1] * ph + pcy
                    w, h = tf.exp(l[2]) * pw, tf.exp(l[3]) * ph
                else:
                    cx, cy = v[0] * l[0] * pw + pcx, v[1] * l[1] * ph + pcy
                    w, h = tf.exp(v[2] * l[2]) * pw, tf.exp(v[3] * l[3]) * ph
                out = [cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5]
            else:  # corner_size
                size = [pw, ph, pw, ph]
                out = [p[i] + l[i] * size[i] if vit else p[i] + v[i] * l[i] * size[i] for i in range(4)]
        return tf.stack(out, axis=-1)

    @staticmethod
    def _size(b):
        """BBoxSize: 0 for an invalid box (xmax < xmin or ymax < ymin), else w * h."""
        import tensorflow as tf

        w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
        return tf.where((b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1]), tf.zeros_like(w), w * h)

    @staticmethod
    def _overlap(a, b, size_a, size_b):
        """JaccardOverlap of boxes ``a`` and ``b`` (broadcast): 0 without intersection, else
        intersection / (size_a + size_b - intersection)."""
        import tensorflow as tf

        iw = tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0])
        ih = tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1])
        inter = iw * ih
        return tf.where((iw > 0) & (ih > 0), inter / (size_a + size_b - inter), tf.zeros_like(inter))

    #: above this many (image, class, candidate, candidate) pairs the pairwise form's matrix is
    #: too big to hold (bools: 32 MiB), and the candidate-by-candidate loop runs instead
    PAIRWISE_LIMIT = 1 << 25

    def _nms(self, cand, n_valid, k: int):
        """ApplyNMSFast on every (image, class) at once; candidates in score order.

        Caffe keeps candidate ``j`` when its overlap with every box kept before it is
        ``<= nms_threshold``. With a fixed threshold (``eta == 1``, Caffe's default) that
        is solved from the pairwise overlaps by a fixed point: ``kept[j] = valid[j] and no
        kept i < j suppresses j``. Each round settles at least one more leading candidate,
        so it stops after at most ``k + 1`` rounds, and in practice after the length of the
        longest suppression chain. ``eta < 1`` (the threshold shrinks after each kept box)
        runs candidate by candidate (:meth:`_nms_sequential`).
        """
        import tensorflow as tf

        if self.eta < 1 or len(self.classes) * k * k > self.PAIRWISE_LIMIT:
            return self._nms_sequential(cand, n_valid, k)
        sizes = self._size(cand)                                            # [n, C', k]
        ranks = tf.range(k)
        valid = ranks[None, None, :] < n_valid[..., None]
        overlap = self._overlap(cand[:, :, :, None, :], cand[:, :, None, :, :],   # [n, C', i (earlier), j]
                                sizes[..., :, None], sizes[..., None, :])
        earlier = ranks[:, None] < ranks[None, :]
        suppresses = tf.logical_not(overlap <= np.float32(self.nms_threshold)) & earlier  # NaN suppresses too

        def body(kept, _changed):
            new = valid & tf.logical_not(tf.reduce_any(kept[..., :, None] & suppresses, axis=-2))
            return new, tf.reduce_any(tf.not_equal(new, kept))

        kept, _ = tf.while_loop(lambda kept, changed: changed, body, (valid, tf.constant(True)))
        return kept

    def _nms_sequential(self, cand, n_valid, k: int):
        """ApplyNMSFast candidate by candidate (needed when ``eta < 1`` adapts the threshold)."""
        import tensorflow as tf

        sizes = self._size(cand)                                            # [n, C', k]
        ranks = tf.range(k)
        valid = ranks[None, None, :] < n_valid[..., None]
        steps = tf.reduce_max(n_valid)
        adapt0 = tf.fill(tf.shape(n_valid), np.float32(self.nms_threshold))
        eta = np.float32(self.eta)

        def body(j, kept, adapt):
            overlap = self._overlap(cand[:, :, j, :][:, :, None, :], cand, sizes[:, :, j:j + 1], sizes)
            suppressed = tf.reduce_any(kept & tf.logical_not(overlap <= adapt[..., None]), axis=-1)
            keep = valid[:, :, j] & tf.logical_not(suppressed)
            kept = kept | ((ranks == j)[None, None, :] & keep[..., None])
            if self.eta < 1:
                adapt = tf.where(keep & (adapt > 0.5), adapt * eta, adapt)
            return j + 1, kept, adapt

        _, kept, _ = tf.while_loop(lambda j, kept, adapt: j < steps, body,
                                   (tf.constant(0), tf.zeros(tf.shape(valid), tf.bool), adapt0))
        return kept

    def _keep_top_k(self, kept, top_scores, n, k: int):
        """Where an image has more than keep_top_k boxes: only its keep_top_k best scores."""
        import tensorflow as tf

        width = len(self.classes) * k
        kk = min(self.keep_top_k, width)
        flat_kept = tf.reshape(kept, [n, width])
        flat = tf.where(flat_kept, tf.reshape(top_scores, [n, width]), tf.constant(-np.inf, tf.float32))
        _, best = tf.math.top_k(flat, k=kk, sorted=True)                    # ties: lower label / rank
        img = tf.broadcast_to(tf.range(n)[:, None], tf.shape(best))
        chosen = tf.tensor_scatter_nd_update(tf.zeros([n, width], tf.bool), tf.stack([img, best], axis=-1),
                                             tf.ones(tf.shape(best), tf.bool)) & flat_kept
        over = tf.reduce_sum(tf.cast(flat_kept, tf.int32), axis=1) > self.keep_top_k
        return tf.reshape(tf.where(over[:, None], chosen, flat_kept), tf.shape(kept))

    @staticmethod
    def _rows_or_empty(rows, n):
        """Caffe's top ``[1, 1, rows, 7]`` as NHWC ``(1, rows, 7, 1)``; no row at all:
        ``[i, -1, -1, -1, -1, -1, -1]`` per image."""
        import tensorflow as tf

        empty = tf.concat([tf.cast(tf.range(n)[:, None], tf.float32), -tf.ones([n, 6], tf.float32)], axis=1)
        rows = tf.cond(tf.shape(rows)[0] > 0, lambda: rows, lambda: empty)
        return tf.reshape(rows, [1, -1, 7, 1])
