"""One typed registry for everything keyed by Caffe type name: shape rules
(:mod:`caffe2tf.frontend.shapes`), translators (:mod:`caffe2tf.backend.registry`) and
reference kernels (:mod:`caffe2tf.verification.reference.registry`).

Built-ins (functions defined in caffe2tf's own modules) and user entries (a plug-in's,
a test's) are kept apart: a lookup finds a user entry first; registering a type twice
raises :class:`RegistrationError` unless ``override=True``; :meth:`Registry.unregister`
removes only user entries, so a built-in can never be lost.
"""
from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterable, TypeVar

from caffe2tf.errors import Caffe2TFError

F = TypeVar("F", bound=Callable)

__all__ = ["Registry", "RegistrationError"]


class RegistrationError(Caffe2TFError, ValueError):
    """A function was registered twice for one type without ``override=True``."""


def _defined_in_caffe2tf(fn: Callable) -> bool:
    return str(getattr(fn, "__module__", "")).startswith("caffe2tf.")


class Registry(Generic[F]):
    """Caffe type name -> function, built-ins apart from user entries.

    Args:
        kind: what is registered, for messages (``"translator"``, ``"shape rule"``).
        builtin_modules: modules whose import registers the built-ins, imported once on
            the first lookup (an explicit list, no discovery).
        is_builtin: which functions are built-ins (default: defined in a ``caffe2tf.`` module).
    """

    def __init__(self, kind: str, *, builtin_modules: Iterable[str] = (),
                 is_builtin: Callable[[Callable], bool] = _defined_in_caffe2tf) -> None:
        self.kind = kind
        self.builtin_modules = tuple(builtin_modules)
        self._is_builtin = is_builtin
        self._builtin: dict[str, F] = {}
        self._user: dict[str, F] = {}
        self._loaded = not self.builtin_modules

    # -- registering -------------------------------------------------------------------------
    def register(self, types: Iterable[str], fn: F, *, override: bool = False) -> F:
        """Register ``fn`` for each of ``types``; see the module docstring for duplicates."""
        types = tuple(types)
        if not types or not all(isinstance(t, str) and t for t in types):
            raise ValueError(f"a {self.kind} needs Caffe type names, got {types!r}")
        builtin = self._is_builtin(fn)
        if not builtin:
            self.load_builtins()
        table = self._builtin if builtin else self._user
        for t in types:
            taken = t in table or (not builtin and t in self._builtin)
            if taken and not override:
                where = getattr(table.get(t) or self._builtin.get(t), "__module__", "?")
                raise RegistrationError(f"a {self.kind} for Caffe type '{t}' is already registered (by {where}); "
                                        "pass override=True to replace it")
            table[t] = fn
        return fn

    def decorator(self, *types: str, override: bool = False) -> Callable[[F], F]:
        """``@registry.decorator("ReLU")``: register the decorated function."""
        if not types or not all(isinstance(t, str) and t for t in types):
            raise ValueError(f"a {self.kind} needs Caffe type names, got {types!r}")

        def register(fn: F) -> F:
            return self.register(types, fn, override=override)
        return register

    def unregister(self, layer_type: str) -> None:
        """Remove a user entry (tests, plug-in reloading); built-ins stay."""
        self._user.pop(layer_type, None)

    def restore_users(self, entries: dict[str, F]) -> None:
        """Make ``entries`` (from :meth:`users`) the user entries again (tests)."""
        self._user = dict(entries)

    # -- looking up --------------------------------------------------------------------------
    def load_builtins(self) -> None:
        """Import the built-in modules (once)."""
        if self._loaded:
            return
        self._loaded = True  # first: the modules' own registrations must not recurse
        try:
            for name in self.builtin_modules:
                importlib.import_module(name)
        except BaseException:
            self._loaded = False
            raise

    def get(self, layer_type: str) -> F | None:
        """The function for ``layer_type`` (a user one first), or ``None``."""
        self.load_builtins()
        return self._user.get(layer_type) or self._builtin.get(layer_type)

    def __getitem__(self, layer_type: str) -> F:
        fn = self.get(layer_type)
        if fn is None:
            raise KeyError(layer_type)
        return fn

    def __contains__(self, layer_type: object) -> bool:
        self.load_builtins()
        return layer_type in self._user or layer_type in self._builtin

    def is_user(self, layer_type: str) -> bool:
        return layer_type in self._user

    def builtins(self) -> dict[str, F]:
        self.load_builtins()
        return dict(self._builtin)

    def users(self) -> dict[str, F]:
        return dict(self._user)

    def types(self, *, include_user: bool = True) -> list[str]:
        """Sorted type names with an entry."""
        self.load_builtins()
        return sorted(set(self._builtin) | (set(self._user) if include_user else set()))

    def as_dict(self) -> dict[str, F]:
        """Every entry, user ones replacing built-ins."""
        self.load_builtins()
        return {**self._builtin, **self._user}
