"""The one list of shared reference cases that a test family cannot pass yet.

``../shared/caffe_reference/`` receives cases before caffe2tf supports their layers.
Every test that globs the cases asks :func:`marks` for the case's marks: a case
listed here for that test family is ``xfail(strict=True)`` with the reason, so CI
stays green *and* honest — the day a case starts passing, its strict mark fails
the run and the line below must be deleted. Nothing else may be weakened for a
pending case. Issue 14 (the model zoo) empties this list.

Families:
    reader:    ``inspect --json`` shapes against the recorded shapes
    executor:  the built-in NumPy executor against every recorded output
    keras:     the Keras conversion (folded and unfolded) against every recorded output
    diff:      the three reference sources (recorded, built-in, pycaffe) agree
"""
from __future__ import annotations

import pytest

_SSD = "SSD layers (Normalize/PriorBox/DetectionOutput) not supported yet (issue 14)"
_ENET = "ENet/SegNet fork BN/Upsample not supported yet (issue 14)"
_MASK = "MAX Pooling mask top not supported yet (issue 14)"

PENDING: dict[str, dict[str, str]] = {
    "reader": {
    },
    "executor": {
    },
    "keras": {
    },
    "diff": {
    },
}


def marks(family: str, case: str) -> list[pytest.MarkDecorator]:
    """The marks a test of ``family`` gives reference case ``case`` (a name)."""
    reason = PENDING[family].get(case)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
