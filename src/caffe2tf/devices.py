"""Which device TensorFlow runs on, and exact float32 on GPUs.

On Ampere and later NVIDIA GPUs TensorFlow runs float32 matmuls and convolutions
in TensorFloat-32 by default (10-bit mantissa inputs), which is ~1e-3 relative
error: far outside the 1e-5 / 2e-4 tolerances that ``diff`` and
``convert --verify`` judge against. :func:`exact_float32` turns TF32 off when a GPU
is visible; the verification code calls it before running the converted model.
"""
from __future__ import annotations

import logging

__all__ = ["device_summary", "exact_float32"]

log = logging.getLogger(__name__)


def device_summary() -> str:
    """One line: the GPUs TensorFlow sees (name, compute capability) or the CPU."""
    import platform

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"device: CPU ({platform.machine()}, no GPU visible to TensorFlow {tf.__version__})"
    parts = []
    for gpu in gpus:
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except Exception:  # noqa: BLE001 - details are best effort
            details = {}
        cc = details.get("compute_capability")
        parts.append(f"{gpu.name.replace('/physical_device:', '')} {details.get('device_name', '')}"
                     + (f" (compute {cc[0]}.{cc[1]})" if cc else ""))
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    return f"device: {', '.join(parts)}; TF32 {'on' if tf32 else 'off'} (TensorFlow {tf.__version__})"


def exact_float32() -> bool:
    """Turn TensorFloat-32 off when TensorFlow sees a GPU; True when it did so."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return False
    if tf.config.experimental.tensor_float_32_execution_enabled():
        tf.config.experimental.enable_tensor_float_32_execution(False)
        log.info("GPU: TensorFloat-32 turned off, so float32 layers compute in full float32 as Caffe does")
    return True
