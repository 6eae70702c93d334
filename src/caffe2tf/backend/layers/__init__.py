"""Keras layers for the Caffe semantics no standard Keras layer computes exactly.

One module per layer family, each layer in Keras style: a docstring with Args / Input
shape / Output shape, ``compute_output_shape``, a short ``call`` and ``get_config``;
registered serializable as ``caffe2tf>ClassName``. Layers hold only hyper-parameters in
their config; numbers (weights, statistics) are Keras weights set by the translators.

``import caffe2tf.backend.layers`` registers every caffe2tf layer: it is all
``keras.models.load_model`` needs to restore a converted ``model.keras`` (it imports
no translator, no converter code).
"""
from caffe2tf.backend.layers.conv import CaffeGroupedDeconv2D
from caffe2tf.backend.layers.elementwise import CaffeBroadcastOp, CaffeElementwise, CaffeWeightedSum
from caffe2tf.backend.layers.normalization import CaffeAffine, CaffeLRN, CaffeMeanVarianceNorm
from caffe2tf.backend.layers.pooling import CaffePooling2D
from caffe2tf.backend.layers.reductions import CaffeArgMax, CaffeReduction
from caffe2tf.backend.layers.resize import CaffeInterp
from caffe2tf.backend.layers.segnet import CaffeBatchStatBN
from caffe2tf.backend.layers.ssd import CaffeConstant, CaffeDetectionOutput, CaffeNormalize
from caffe2tf.backend.layers.tensor_ops import CaffeReshape, CaffeSlice
from caffe2tf.backend.layers.unpooling import CaffeMaxPoolWithMask, CaffeMaxUnpool

#: The layer-family modules (all imported above).
LAYER_MODULES = tuple(f"caffe2tf.backend.layers.{m}" for m in (
    "conv", "elementwise", "normalization", "pooling", "reductions", "resize", "segnet", "ssd", "tensor_ops",
    "unpooling"))

__all__ = ["CaffeAffine", "CaffeArgMax", "CaffeBatchStatBN", "CaffeBroadcastOp", "CaffeConstant",
           "CaffeDetectionOutput", "CaffeElementwise", "CaffeGroupedDeconv2D", "CaffeInterp", "CaffeLRN",
           "CaffeMaxPoolWithMask", "CaffeMaxUnpool", "CaffeMeanVarianceNorm", "CaffeNormalize", "CaffePooling2D",
           "CaffeReduction", "CaffeReshape", "CaffeSlice", "CaffeWeightedSum", "LAYER_MODULES"]
