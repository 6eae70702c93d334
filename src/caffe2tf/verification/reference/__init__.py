"""An independent NumPy implementation of Caffe's layers (NCHW, float32).

It shares no code with the Keras translators and is tested against real-Caffe
recordings (``../shared/caffe_reference``), so it can stand in for Caffe when
verifying a converted model on inputs Caffe never saw.

    from caffe2tf.verification.reference import run_graph
    values = run_graph(graph, {"data": image_nchw})
"""
from caffe2tf.verification.reference.executor import check_supported, run_graph, run_node
from caffe2tf.verification.reference.registry import get_kernel, kernel, kernels, supported_types

__all__ = ["run_graph", "run_node", "check_supported", "get_kernel", "kernel", "kernels",
           "supported_types"]
