"""Keep TensorFlow's C++ start-up banner out of our commands' stderr.

``import tensorflow`` prints, from C++ and before absl's logging is set up, lines that
``TF_CPP_MIN_LOG_LEVEL`` does not always silence: absl's "All log messages before
absl::InitializeLog() is called ..." preamble and, where oneDNN is on (a user who set
``TF_ENABLE_ONEDNN_OPTS=1``), its "oneDNN custom operations are on" notice; with the
level lowered, also the CPU-feature note. :func:`install` puts a finder on
``sys.meta_path`` that runs TensorFlow's first import with file descriptor 2 sent to a
temporary file, then writes back every line that is not one of those. Nothing is lost:
other output of the import (a real error, a Python warning) comes back in order, after
the import. ``-vv`` uninstalls the finder (:func:`uninstall`), giving TensorFlow's own
output back.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

__all__ = ["BANNER_MARKERS", "install", "is_banner", "uninstall", "without_banner"]

#: Substrings of the lines we hold back (each is a line TensorFlow prints at import).
BANNER_MARKERS: tuple[bytes, ...] = (
    b"All log messages before absl::InitializeLog() is called",
    b"oneDNN custom operations are on",
    b"cpu_feature_guard.cc",
    b"To enable the following instructions:",  # the CPU-feature note's second line
)


def is_banner(line: bytes) -> bool:
    return any(m in line for m in BANNER_MARKERS)


@contextmanager
def without_banner() -> Iterator[None]:
    """Run the body with fd 2 captured; afterwards write back all but the banner lines."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded, closed): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().splitlines(keepends=True) if not is_banner(line)]
            if kept:
                os.write(2, b"".join(kept))


class _QuietLoader(importlib.abc.Loader):
    """Wraps TensorFlow's own loader for the one ``exec_module`` call."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec):  # noqa: ANN001, ANN201 - importlib's protocol
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        module.__loader__ = self._inner  # the module keeps its real loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner
        with without_banner():
            self._inner.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201
        if name != "tensorflow":
            return None
        uninstall()  # once: later imports find the module in sys.modules
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


_FINDER = _QuietTensorFlowFinder()


def install() -> None:
    """Hold back the banner of TensorFlow's first import (no-op once it is imported)."""
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
