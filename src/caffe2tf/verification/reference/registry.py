"""Registry of reference kernels, keyed by Caffe type name.

A kernel is a plain function ``(node, inputs) -> outputs`` taking the node's
input arrays (NCHW float32, in ``node.inputs`` order) and returning one array
per ``node.outputs``. Kernels are registered with :func:`kernel` in a
:class:`caffe2tf.registry.Registry` (duplicates refused, a plug-in's kept apart); the
kernel modules are imported from an explicit list.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from caffe2tf.ir import Node
from caffe2tf.registry import Registry

Kernel = Callable[[Node, Sequence[np.ndarray]], list[np.ndarray]]

# Kernel modules, imported once on the first lookup (explicit, no magic discovery).
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

#: Reference kernels by Caffe type; built-ins apart from a plug-in's.
KERNELS: Registry[Kernel] = Registry("reference kernel", builtin_modules=tuple(f"{__package__}.{m}" for m in _MODULES))


def kernel(*type_names: str, override: bool = False) -> Callable[[Kernel], Kernel]:
    """Register a function as the kernel of one or more Caffe types (a second kernel
    for a type is refused unless ``override=True``)."""
    return KERNELS.decorator(*type_names, override=override)


def kernels() -> dict[str, Kernel]:
    """All registered kernels (type name -> function; a plug-in's replace built-ins)."""
    return KERNELS.as_dict()


def get_kernel(type_name: str) -> Kernel | None:
    """The kernel of a Caffe type, or ``None`` if it has none."""
    return KERNELS.get(type_name)


def supported_types() -> list[str]:
    """Sorted Caffe type names the reference executor can run."""
    return KERNELS.types()
