"""Shared by the fuzzers: example budgets, hang guard, and the one-line-error check."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from guards import time_limit  # noqa: F401  (the fuzzers import it from here)

LONG = os.environ.get("CAFFE2TF_FUZZ", "") == "long"
SCALE = float(os.environ.get("CAFFE2TF_FUZZ_SCALE", "1"))


def budget(ci: int, long: int) -> int:
    """Examples for one fuzzer: ``ci`` in the normal suite, ``long * SCALE`` under make fuzz."""
    return max(1, int(long * SCALE)) if LONG else ci


def fuzz_settings(ci: int, long: int, **kw: object) -> settings:
    """In the normal suite the examples are derandomized (the same ones on every run), so a
    landing is never refused for a bug a random draw happened to hit; the hunt for new ones
    is ``make fuzz``, which draws fresh examples each run."""
    return settings(max_examples=budget(ci, long), deadline=None, database=None, print_blob=True,
                    derandomize=not LONG,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much], **kw)




_TALLY_DIR = os.environ.get("CAFFE2TF_FUZZ_TALLY")  # a folder: examples run so far, per fuzzer
_tally: dict[str, int] = {}


def tally(name: str) -> None:
    """Count one finished example of ``name`` (written every 20 to ``$CAFFE2TF_FUZZ_TALLY/name``,
    so a long hunt stopped at its deadline still says how many examples it ran)."""
    if not _TALLY_DIR:
        return
    n = _tally[name] = _tally.get(name, 0) + 1
    if n % 20 == 0:
        with open(os.path.join(_TALLY_DIR, name), "w") as f:
            f.write(f"{n}\n")
