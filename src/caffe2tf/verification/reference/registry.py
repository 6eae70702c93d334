"""Registry of reference kernels, keyed by Caffe type name.

A kernel is a plain function ``(node, inputs) -> outputs`` taking the node's
input arrays (NCHW float32, in ``node.inputs`` order) and returning one array
per ``node.outputs``. Kernels are registered with :func:`kernel`, which refuses
duplicates; the kernel modules are imported from an explicit list.
"""
from __future__ import annotations

import importlib
from typing import Callable, Sequence

import numpy as np

from caffe2tf.ir import Node

Kernel = Callable[[Node, Sequence[np.ndarray]], list[np.ndarray]]

_KERNELS: dict[str, Kernel] = {}

# Kernel modules, imported once by :func:`kernels` (explicit, no magic discovery).
_MODULES = (
    "activations",
    "conv",
    "detection",
    "interp",
    "normalization",
    "pooling",
    "shape_ops",
    "upsample",
)
_loaded = False


def kernel(*type_names: str) -> Callable[[Kernel], Kernel]:
    """Register a function as the kernel of one or more Caffe types."""

    def register(fn: Kernel) -> Kernel:
        for name in type_names:
            if name in _KERNELS:
                raise ValueError(f"reference kernel for {name!r} registered twice")
            _KERNELS[name] = fn
        return fn

    return register


def kernels() -> dict[str, Kernel]:
    """All registered kernels (type name -> function)."""
    global _loaded
    if not _loaded:
        for mod in _MODULES:
            importlib.import_module(f"{__package__}.{mod}")
        _loaded = True
    return dict(_KERNELS)


def get_kernel(type_name: str) -> Kernel | None:
    """The kernel of a Caffe type, or ``None`` if it has none."""
    return kernels().get(type_name)


def supported_types() -> list[str]:
    """Sorted Caffe type names the reference executor can run."""
    return sorted(kernels())
