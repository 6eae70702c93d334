"""The built-in translators: one module per Caffe type or small family.

Each module registers plain functions with ``@translator("Type")``
(:func:`caffe2tf.backend.registry.translator`). Nothing here imports them: the
registry loads exactly the modules named in
:data:`caffe2tf.backend.registry.BUILTIN_MODULES`, in that order, the first time a
translator is looked up. The infrastructure they share stays one level up, in
:mod:`caffe2tf.backend` (``context``, ``layout``, ``caffe_math``, ``prior_box``,
``build``); their custom Keras layers are in :mod:`caffe2tf.backend.layers`.
"""
