"""Fuzzing budgets: quick in CI, long with ``CAFFE2TF_FUZZ=long`` (what ``make fuzz`` sets).

Every fuzzer here takes its example count from :func:`budget`, so one switch scales them
all; ``CAFFE2TF_FUZZ_SCALE`` (a float, default 1) multiplies the long counts (a longer or
shorter hunt without editing code). Hypothesis' example database is kept off: a failing
example is printed in full (prototxt text or request) and its seed with ``print_blob``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))  # netgen, fuzz_helpers
