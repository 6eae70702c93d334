"""The TensorFlow flavour setup.py puts into the package metadata (docs/distributed.md, GPU install)."""
from __future__ import annotations

import runpy
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
reqs_for = runpy.run_path(str(SETUP), run_name="caffe2tf_setup")["tensorflow_requirements"]


def _installed(flavour: str, env: dict) -> set[str]:
    out = set()
    for line in reqs_for(flavour):
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            out.add(req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else ""))
    return out


LINUX_X86 = {"platform_machine": "x86_64", "sys_platform": "linux"}
LINUX_ARM = {"platform_machine": "aarch64", "sys_platform": "linux"}
MAC_ARM = {"platform_machine": "arm64", "sys_platform": "darwin"}


def test_cpu_default_is_unchanged():
    assert _installed("cpu", LINUX_X86) == {"tensorflow-cpu"}
    assert _installed("cpu", LINUX_ARM) == {"tensorflow"} and _installed("cpu", MAC_ARM) == {"tensorflow"}


def test_gpu_brings_tensorflow_and_cuda_without_tensorflow_cpu():
    assert _installed("gpu", LINUX_X86) == {"tensorflow[and-cuda]"}
    assert _installed("gpu", MAC_ARM) == {"tensorflow"}
    assert _installed("none", LINUX_X86) == set()
    assert all(Marker(str(Requirement(r).marker)) for r in reqs_for("gpu"))
