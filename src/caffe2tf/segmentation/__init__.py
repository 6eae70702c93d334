"""PSPNet in use: preprocessing, the sliding-window evaluation protocol, metrics,
class names and palettes, visualisation, reports, synthetic data and fine-tuning.

Modules are imported directly (``from caffe2tf.segmentation.protocol import
segment_image``); this package imports nothing heavy on its own, and only
``finetune`` and ``evaluate.keras_logits_fn`` need TensorFlow.
"""
