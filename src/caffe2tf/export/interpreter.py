"""Running a ``.tflite`` flatbuffer: the interpreter, its signature runner, its op counts."""
from __future__ import annotations

import logging
import os
import warnings

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["TFLiteRunner", "op_counts"]


def _interpreter(model_content: bytes, threads: int | None = None):  # noqa: ANN202
    """The TFLite interpreter: LiteRT's when installed, else TensorFlow's (deprecated alias)."""
    threads = threads or os.cpu_count() or 1
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
        runtime = "LiteRT (ai_edge_litert, XNNPACK)"
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
        runtime = "tf.lite.Interpreter (deprecated; install ai-edge-litert for LiteRT)"
    log.info("TFLite runtime: %s, %d thread(s)", runtime, threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TF's "tf.lite.Interpreter is deprecated" notice
        interp = Interpreter(model_content=model_content, num_threads=threads)
    return interp


class TFLiteRunner:
    """Runs a ``.tflite`` model through its ``serving_default`` signature."""

    def __init__(self, model_content: bytes, threads: int | None = None) -> None:
        self.interpreter = _interpreter(model_content, threads)
        sigs = self.interpreter.get_signature_list()
        self.signature = "serving_default" if "serving_default" in sigs else next(iter(sigs))
        self.runner = self.interpreter.get_signature_runner(self.signature)
        self.input_names = list(sigs[self.signature]["inputs"])
        self.output_names = list(sigs[self.signature]["outputs"])

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.runner(**{k: np.ascontiguousarray(v) for k, v in feeds.items()})
        return {k: np.asarray(v) for k, v in out.items()}


def op_counts(model_content: bytes) -> dict[str, int]:
    """How often each TFLite op occurs in the model (before any delegate takes ops over)."""
    import tensorflow as tf

    counts: dict[str, int] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interp = tf.lite.Interpreter(
                model_content=model_content,
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        for op in interp._get_ops_details():  # noqa: SLF001 - the only op listing the interpreter has
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    except Exception as exc:  # noqa: BLE001 - a nicety
        log.debug("could not list TFLite ops: %s", exc)
        return {}
    return dict(sorted(counts.items()))
