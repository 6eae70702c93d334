"""Shape inference in Caffe's own semantics.

One rule per layer type: ``rule(param, in_shapes) -> ShapeResult`` where
``param`` is the layer's ``LayerParameter`` and ``in_shapes`` its bottoms' NCHW
shapes. A rule returns the tops' shapes and the *canonical* shapes of the
layer's blobs, which the reader uses to check (and, for harmless differences in
leading/trailing 1s, e.g. a 0-d ``[]`` blob for ``(1,)``, reshape) what the
caffemodel holds. Type names that forks use with different meanings (``BN``,
``Upsample``) have a rule that also takes the reading (``Node.reading``, see
:mod:`caffe2tf.frontend.readings`): ``infer(param, in_shapes, reading)``.

Canonical blob shapes (``Node.weights``), C = channels of the bottom:

========================  ====================================================
Convolution               W (O, C/g, kh, kw), b (O,) — also the forks'
                          ``DepthwiseConvolution`` / ``ConvolutionDepthwise``,
                          which the reader upgrades to Convolution, group = C
Deconvolution             W (C, O/g, kh, kw), b (O,)
InnerProduct              W (N, K) — (K, N) with ``transpose`` — b (N,)
BatchNorm                 mean (C,), variance (C,), scale factor (1,)
BN, reading ``pspnet``    slope, bias, mean, variance: each (C,)
BN, reading ``segnet``    scale, shift: each (C,) (stored 1xCx1x1)
Scale / Bias              bottom.shape[axis : axis + num_axes]
PReLU                     (C,), or (1,) when ``channel_shared`` (stored ``[]``)
Normalize (SSD)           (C,), or (1,) when ``channel_shared`` (stored ``[]``)
everything else           no blobs
========================  ====================================================

Output shapes worth knowing:

* MAX ``Pooling`` may have a second top, the argmax mask, shaped like the first.
* ``Upsample``: ``nearest`` (N, C, H*s, W*s); ``unpool`` upsample_h x upsample_w,
  else H*scale - pad_out (bottoms: values and a mask of the same shape).
* ``PriorBox``: (1, 2, H*W*priors*4) for a feature map H x W.
* ``DetectionOutput``: (1, 1, None, 7). The number of rows depends on the data;
  the IR writes it as ``None`` (as Keras does for an unknown dimension), inspect
  shows ``?`` (JSON ``null``), and a layer fed by such a value gets an unknown
  shape rather than a guess.

Modules, one per family: ``linear_pool`` (Convolution, Deconvolution,
InnerProduct, Pooling), ``elementwise`` (same-shape layers and their per-channel
blobs), ``tensor_ops`` (Concat, Slice, Reshape, Permute, Tile, ...), ``resize``
(Interp, Upsample), ``detection`` (PriorBox, DetectionOutput).
"""
from caffe2tf.frontend.shapes._core import (MAX_ELEMENTS, READING_RULES, SHAPE_RULES, ReadingRule, Rule, Shape,
                                             ShapeResult, canonical_axis, has_rule, has_unknown_dim, infer,
                                             reading_rule, rule)
from caffe2tf.frontend.shapes.linear_pool import ConvGeometry, PoolGeometry, conv_geometry, pool_geometry
from caffe2tf.frontend.shapes import elementwise as _elementwise  # noqa: F401  (registers rules)
from caffe2tf.frontend.shapes import tensor_ops as _tensor_ops  # noqa: F401
from caffe2tf.frontend.shapes.resize import interp_size, nearest_scale, unpool_size
from caffe2tf.frontend.shapes.detection import num_priors, prior_aspect_ratios

__all__ = ["MAX_ELEMENTS", "READING_RULES", "SHAPE_RULES", "ConvGeometry", "PoolGeometry", "ReadingRule", "Rule", "Shape", "ShapeResult",
           "canonical_axis", "conv_geometry", "has_rule", "has_unknown_dim", "infer", "interp_size",
           "nearest_scale", "num_priors", "pool_geometry", "prior_aspect_ratios", "reading_rule", "rule",
           "unpool_size"]
