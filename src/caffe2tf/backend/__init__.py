"""Caffe layer -> Keras translators (one module per layer family).

Public API::

    from caffe2tf.backend import translator, TranslationContext

    @translator("MyLayer")
    def my_layer(node, inputs, ctx):
        ...

See :mod:`caffe2tf.backend.registry` and ``docs/adding_a_layer.md``.
"""
from caffe2tf.backend.context import TranslationContext, sanitize_name, weights_of
from caffe2tf.backend.registry import (
    RegistrationError,
    check_supported,
    get_translator,
    load_plugin,
    load_plugins,
    supported_types,
    translator,
)

__all__ = [
    "RegistrationError", "TranslationContext", "check_supported", "get_translator", "load_plugin",
    "load_plugins", "sanitize_name", "supported_types", "translator", "weights_of",
]
