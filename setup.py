"""Only the TensorFlow requirement is computed here; everything else is in pyproject.toml.

pip cannot drop a base requirement when an extra is chosen (extras only add), so a
``gpu`` extra could never keep ``tensorflow-cpu`` out of a GPU install. The TensorFlow
flavour is therefore chosen when the package is built, by ``CAFFE2TF_TENSORFLOW``:

- ``cpu`` (default): ``tensorflow-cpu`` on x86-64 (the light CPU wheel), ``tensorflow``
  elsewhere (aarch64, macOS have no -cpu wheel) - exactly the previous requirement;
- ``gpu``: ``tensorflow[and-cuda]`` on Linux (TensorFlow plus the CUDA/cuDNN wheels),
  ``tensorflow`` elsewhere; no ``tensorflow-cpu``;
- ``none``: no TensorFlow requirement (bring your own build, e.g. a cluster's module).

    CAFFE2TF_TENSORFLOW=gpu pip install --no-cache-dir '.[app]'

See docs/distributed.md ("GPU install").
"""
from __future__ import annotations

import os

from setuptools import setup

COMMON = [
    "keras>=3.3",
    "numpy>=1.26",
    "protobuf>=6.30",
    "h5py>=3.10",
    "click>=8.1",
    "tqdm>=4.66",
    "pillow>=10.0",
]
X86 = "(platform_machine == 'x86_64' or platform_machine == 'AMD64')"
NOT_X86 = "(platform_machine != 'x86_64' and platform_machine != 'AMD64')"


def tensorflow_requirements(flavour: str) -> list[str]:
    """The TensorFlow requirement lines for ``cpu``, ``gpu`` or ``none`` (module docstring)."""
    if flavour == "cpu":
        return [f"tensorflow-cpu>=2.16; {X86}", f"tensorflow>=2.16; {NOT_X86}"]
    if flavour == "gpu":
        return ["tensorflow[and-cuda]>=2.16; sys_platform == 'linux'", "tensorflow>=2.16; sys_platform != 'linux'"]
    if flavour == "none":
        return []
    raise SystemExit(f"CAFFE2TF_TENSORFLOW must be cpu, gpu or none, not {flavour!r}")


if __name__ == "__main__":
    setup(install_requires=COMMON + tensorflow_requirements(os.environ.get("CAFFE2TF_TENSORFLOW", "cpu").lower()))
