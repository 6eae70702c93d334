"""What every caffe2tf Keras layer module shares: the ``caffe2tf`` registration package.

The registered name of a layer is ``caffe2tf>ClassName`` whatever module defines it, so
``.keras`` files saved before a layer moved between modules still load.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

#: ``@serializable`` registers a layer class as ``caffe2tf>ClassName``.
serializable = keras.saving.register_keras_serializable(package="caffe2tf")


def _pair(v: Sequence[int] | int) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))
